"""Slow, obviously-correct reference implementations (Python loops over lists) for the tests.

Each mirrors one fast function and consumes the same explicit uniforms, so fast and reference must make the
same decisions: acceptance tests ``u < target / draft``, inverse-CDF sampling ``first token whose cumulative
mass exceeds u * total``. ``exact_first_token_distribution`` is the ground truth for the statistical tests.
"""

from __future__ import annotations

import math

from specdec.config import SamplingParams


def ref_logits_to_probs(logits: list[float], sampling: SamplingParams) -> list[float]:
    """One row: temperature, top-k, top-p, min-p by sorting and looping; greedy = one-hot of the argmax."""
    vocab = len(logits)
    order = sorted(range(vocab), key=lambda i: -logits[i])          # stable: ties by lower index
    if sampling.greedy:
        return [1.0 if i == order[0] else 0.0 for i in range(vocab)]
    kept = order[:sampling.top_k] if sampling.top_k > 0 else order
    top = logits[order[0]] / sampling.temperature
    weights = {i: math.exp(logits[i] / sampling.temperature - top) for i in kept}
    probs = _normalise(weights)
    if sampling.top_p < 1.0:
        nucleus, mass = {}, 0.0
        for i in sorted(probs, key=lambda i: -probs[i]):             # most likely first
            nucleus[i] = probs[i]
            mass += probs[i]
            if mass >= sampling.top_p:
                break
        probs = _normalise(nucleus)
    if sampling.min_p > 0.0:
        largest = max(probs.values())
        probs = _normalise({i: w for i, w in probs.items() if w >= sampling.min_p * largest})
    return [probs.get(i, 0.0) for i in range(vocab)]


def _normalise(weights: dict[int, float]) -> dict[int, float]:
    total = sum(weights.values())
    return {i: w / total for i, w in weights.items()}


def ref_sample(weights: list[float], uniform: float) -> int:
    """The first token whose cumulative weight exceeds uniform * total (zero-weight tokens never chosen)."""
    threshold, cumulative = uniform * sum(weights), 0.0
    for token, weight in enumerate(weights):
        cumulative += weight
        if weight > 0 and cumulative > threshold:
            return token
    return max(t for t, w in enumerate(weights) if w > 0)


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def ref_verify_greedy(tokens: list[int], parents: list[int], target_logits: list[list[float]]):
    """Greedy chain / tree verification. Returns (accepted_path, next_token, bonus)."""
    path, node = [], -1
    while True:
        kids = [c for c in range(len(tokens)) if parents[c] == node]
        best = _argmax(target_logits[node + 1])
        match = [c for c in kids if tokens[c] == best]
        if not match:
            return path, best, not kids
        node = match[0]
        path.append(node)


def ref_chain_sampling(tokens: list[int], draft_probs: list[list[float]] | None,
                       target_probs: list[list[float]], uniforms: list[float]) -> tuple[int, int]:
    """Speculative sampling of one chain. Returns (n_accepted, next_token); uniforms has k+1 entries."""
    k = len(tokens)
    for depth in range(k):
        x = tokens[depth]
        draft = draft_probs[depth] if draft_probs is not None else [float(t == x) for t in range(len(target_probs[0]))]
        ratio = target_probs[depth][x] / draft[x] if draft[x] > 0 else math.inf
        if not uniforms[depth] < min(1.0, ratio):
            residual = [max(0.0, t - d) for t, d in zip(target_probs[depth], draft)]
            if sum(residual) <= 1e-12:
                residual = target_probs[depth]
            return depth, ref_sample(residual, uniforms[k])
    return k, ref_sample(target_probs[k], uniforms[k])


def ref_tree_sampling(tokens: list[int], parents: list[int], draft_probs: list[list[float]] | None,
                      target_probs: list[list[float]], uniforms: list[float]):
    """Recursive rejection sampling, siblings without replacement. Returns (accepted_path, next_token, bonus)."""
    n, vocab = len(tokens), len(target_probs[0])
    path, node = [], -1
    while True:
        kids = [c for c in range(n) if parents[c] == node]
        row = target_probs[node + 1]
        if not kids:
            return path, ref_sample(row, uniforms[n]), True
        residual = [t / sum(row) for t in row]
        tried: list[int] = []
        for c in kids:
            x = tokens[c]
            draft = [float(t == x) for t in range(vocab)]                       # one-hot proposal
            if draft_probs is not None:
                masked = [0.0 if t in tried else draft_probs[c][t] for t in range(vocab)]
                if masked[x] > 0:                                               # else: keep the one-hot
                    draft = [m / sum(masked) for m in masked]
            if uniforms[c] < min(1.0, residual[x] / draft[x]):
                path.append(c)
                node = c
                break
            leftover = [max(0.0, r - d) for r, d in zip(residual, draft)]
            residual = [v / sum(leftover) for v in leftover] if sum(leftover) > 1e-12 else [t / sum(row) for t in row]
            tried.append(x)
        else:
            return path, ref_sample(residual, uniforms[n]), False


def ref_typical(tokens: list[int], parents: list[int], target_probs: list[list[float]], uniform: float,
                posterior_threshold: float = 0.09, posterior_alpha: float = 0.3):
    """LOSSY typical acceptance. Returns (accepted_path, next_token, bonus)."""
    def passes(node: int) -> bool:
        row = target_probs[parents[node] + 1]
        entropy = -sum(t * math.log(t) for t in row if t > 0)
        return row[tokens[node]] > min(posterior_threshold, posterior_alpha * math.exp(-entropy))

    def root_path(node: int) -> list[int]:
        return [] if node < 0 else root_path(parents[node]) + [node]

    best: list[int] = []
    for node in range(len(tokens)):                                 # first longest path wins ties
        path = root_path(node)
        if all(passes(v) for v in path) and len(path) > len(best):
            best = path
    last = best[-1] if best else -1
    return best, ref_sample(target_probs[last + 1], uniform), last not in parents


def exact_first_token_distribution(target_row: list[float], n_children: int,
                                  draft_row: list[float] | None = None,
                                  tokens: list[int] | None = None) -> list[float]:
    """EXACT distribution of the first emitted token when the root has ``n_children`` children, by enumeration.

    Children are drawn without replacement from ``draft_row`` (or are the fixed ``tokens`` when draft_row is
    None); every draw order and accept / reject outcome is enumerated with its probability. A lossless
    verifier gives exactly ``target_row`` (normalised): this checks the algorithm, not just an implementation.
    """
    vocab = len(target_row)
    out = [0.0] * vocab

    def visit(residual: list[float], tried: list[int], weight: float, j: int) -> None:
        # weight = P(reach sibling j with the earlier siblings ``tried`` all rejected)
        if draft_row is None:
            draft = [float(t == tokens[j]) for t in range(vocab)] if j < n_children else None
        else:
            masked = [0.0 if t in tried else draft_row[t] for t in range(vocab)]
            draft = [m / sum(masked) for m in masked] if j < n_children and sum(masked) > 0 else None
        if draft is None:                                   # no sibling left: recovered token from residual
            for y in range(vocab):
                out[y] += weight * residual[y]
            return
        leftover = [max(0.0, r - d) for r, d in zip(residual, draft)]
        for x in range(vocab):
            if draft[x] == 0:
                continue
            accept = min(1.0, residual[x] / draft[x])
            out[x] += weight * draft[x] * accept
            if accept < 1.0:
                visit([v / sum(leftover) for v in leftover], tried + [x], weight * draft[x] * (1 - accept), j + 1)

    visit([t / sum(target_row) for t in target_row], [], 1.0, 0)
    return out


# --- seeded sampling (position-keyed Gumbel noise), in plain Python integers and floats -----------------------

def ref_hash32(x: int) -> int:
    """hash32 of specdec.verify.seeded on a Python int in [0, 2**32)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def ref_uniform(seed: int, position: int, token: int) -> float:
    s = ref_hash32((seed & 0xFFFFFFFF) ^ ref_hash32(seed >> 32))
    key = ref_hash32(s ^ ref_hash32(position & 0xFFFFFFFF))
    h = ref_hash32(key ^ token)
    high = ref_hash32(h ^ 0x9E3779B9) >> 5
    return ((high << 26) + (h >> 6) + 0.5) * 2.0 ** -53


def ref_seeded_sample(probs: list[float], seed: int, position: int, epsilon: float) -> int:
    """The seeded sample of one distribution: the best of log p + g over tokens >= epsilon, against the group of
    the others (log of their mass + its own g); if the group wins, inverse CDF within it."""
    gumbel = lambda token: -math.log(-math.log(ref_uniform(seed, position, token)))  # noqa: E731
    best, best_score = -1, -math.inf
    for token, p in enumerate(probs):
        if p >= epsilon and math.log(p) + gumbel(token) > best_score:
            best, best_score = token, math.log(p) + gumbel(token)
    rest = sum(p for p in probs if p < epsilon)
    if rest > 0 and math.log(rest) + gumbel(len(probs)) > best_score:
        threshold, acc = ref_uniform(seed, position, len(probs) + 1) * rest, 0.0
        small = [(t, p) for t, p in enumerate(probs) if p < epsilon and p > 0]
        for token, p in small:
            acc += p
            if acc > threshold:
                return token
        return small[-1][0]
    return best


def ref_verify_seeded(tokens: list[int], parents: list[int], target_probs: list[list[float]], seed: int,
                      position: int, epsilon: float) -> tuple[list[int], int]:
    """(accepted path, next token): from the root, follow the child equal to the seeded sample of its row."""
    path, row, depth = [], 0, 0
    while True:
        choice = ref_seeded_sample(target_probs[row], seed, position + depth, epsilon)
        match = next((c for c in range(len(tokens)) if parents[c] == row - 1 and tokens[c] == choice), None)
        if match is None:
            return path, choice
        path.append(match)
        row, depth = match + 1, depth + 1
