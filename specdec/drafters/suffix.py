"""Suffix decoding (SuffixDecoding, Oliaro et al. 2024): draft what followed the context's latest suffix, in this
request's own prompt and output and in earlier responses, as a tree of the most frequent continuations.

Two suffix tries count every substring of up to `depth` tokens:

- the request's own trie (prompt + output), extended by each step's committed tokens only;
- a global trie of recent responses, shared by every request of the drafter (its forks), bounded to
  `max_global_nodes` nodes: the oldest responses are removed (their counts taken back) when it outgrows that.
  A request adds its output when it ends (`end`), unless it asked not to (`learn=False`: its content never
  shapes another request's drafts). It can also be warmed from earlier responses (`warm=FILE.jsonl`).

To propose, each trie finds the longest suffix of the context (at least `min_match` tokens) that occurred
before with a continuation. From that node the draft tree grows best-first by the empirical probability of a
path (the product, along it, of each child's count over its siblings' total), at most `max_spec_factor` x the
match length nodes (a long match is a confident one), nodes below `min_prob` left out. The trie whose tree has
the larger expected accepted length wins. Each node's confidence is its path probability after calibration:
the acceptance measured so far for drafts of similar predicted probability (`Calibration`, shared by the
forks) pulls the raw frequency towards what verification actually kept, so that `fit`, unions and the
load-aware server size drafts by calibrated confidences. Proposals are deterministic (draft_probs None), so
sampling stays exact under the verifier.
"""

from __future__ import annotations

import heapq
import json
from collections import deque
from pathlib import Path

import torch

from specdec.drafters import register
from specdec.drafters.base import DecodeState, Forkable
from specdec.drafters.cost import CostCurve, fit_costs, worth_verifying
from specdec.errors import ConfigError
from specdec.types import Draft, VerifyResult


class Node:
    __slots__ = ("children", "count")

    def __init__(self) -> None:
        self.children: dict[int, Node] | None = None
        self.count = 0

    def child(self, token: int) -> Node:
        if self.children is None:
            self.children = {}
        node = self.children.get(token)
        if node is None:
            node = self.children[token] = Node()
        return node


class SuffixTrie:
    """Occurrence counts of every substring of at most `depth` tokens of the sequences added: the node reached
    by a path p counts the occurrences of p. `nodes` is the trie's size (for bounding memory)."""

    def __init__(self, depth: int):
        if depth < 2:
            raise ConfigError(f"depth={depth} is invalid; accepted: an integer >= 2")
        self.depth, self.root, self.nodes = depth, Node(), 0

    def add(self, tokens: list[int]) -> None:
        for i in range(len(tokens)):
            node = self.root
            for tok in tokens[i:i + self.depth]:
                before = node.children is not None and tok in node.children
                node = node.child(tok)
                self.nodes += not before
                node.count += 1

    def remove(self, tokens: list[int]) -> None:
        """Take back what add(tokens) counted (the same tokens were added before)."""
        for i in range(len(tokens)):
            path = [self.root]
            for tok in tokens[i:i + self.depth]:
                path.append(path[-1].children[tok])
            for parent, node, tok in zip(reversed(path[:-1]), reversed(path[1:]),
                                         reversed(tokens[i:i + self.depth])):
                node.count -= 1
                if node.count == 0:
                    del parent.children[tok]
                    self.nodes -= 1

    def match(self, context: list[int], min_match: int) -> tuple[Node | None, int]:
        """(the node of the longest suffix of `context`, of at least min_match and fewer than depth tokens, that
        has a continuation, its length), or (None, 0)."""
        for n in range(min(self.depth - 1, len(context)), min_match - 1, -1):
            node = self.root
            for tok in context[len(context) - n:]:
                node = node.children.get(tok) if node.children else None
                if node is None:
                    break
            if node is not None and node.children:
                return node, n
        return None, 0


class IncrementalTrie(SuffixTrie):
    """A suffix trie of one growing sequence: each appended token extends the nodes of the suffixes that end
    just before it (O(depth) per token), and those nodes are the context's suffixes for `match`."""

    def __init__(self, depth: int):
        super().__init__(depth)
        self.tokens: list[int] = []
        self._suffixes: list[Node] = []      # node of the suffix of length i + 1 of self.tokens

    def extend(self, tokens: list[int]) -> None:
        for tok in tokens:
            grown = []
            for node in [self.root, *self._suffixes[:self.depth - 1]]:
                before = node.children is not None and tok in node.children
                child = node.child(tok)
                self.nodes += not before
                child.count += 1
                grown.append(child)
            self._suffixes = grown
            self.tokens.append(tok)

    def match(self, context: list[int], min_match: int) -> tuple[Node | None, int]:
        """As SuffixTrie.match, for context == self.tokens (the suffixes' nodes are at hand)."""
        for n in range(min(self.depth - 1, len(self._suffixes)), min_match - 1, -1):
            node = self._suffixes[n - 1]
            if node.children:
                return node, n
        return None, 0


class GlobalTrie(SuffixTrie):
    """The responses seen so far, oldest removed first when the trie outgrows `max_nodes`."""

    def __init__(self, depth: int, max_nodes: int):
        super().__init__(depth)
        self.max_nodes = max_nodes
        self.responses: deque[list[int]] = deque()

    def learn(self, tokens: list[int]) -> None:
        if not tokens:
            return
        self.add(tokens)
        self.responses.append(list(tokens))
        while self.nodes > self.max_nodes and self.responses:
            self.remove(self.responses.popleft())


class Calibration:
    """Measured acceptance by predicted probability: `bins` equal bins of [0, 1], each with a prior of `prior`
    pseudo-drafts at its own predicted value. calibrated(p) = (accepted + prior * p) / (tested + prior) in p's bin.
    A node is tested when its parent was accepted (or it is a child of the root)."""

    def __init__(self, bins: int = 10, prior: float = 4.0):
        self.bins, self.prior = bins, prior
        self.accepted = [0] * bins
        self.tested = [0] * bins

    def _bin(self, p: float) -> int:
        return min(self.bins - 1, int(p * self.bins))

    def calibrated(self, p: float) -> float:
        b = self._bin(p)
        return (self.accepted[b] + self.prior * p) / (self.tested[b] + self.prior)

    def update(self, predicted: list[float], parents: list[int], accepted_path: list[int]) -> None:
        kept = set(accepted_path)
        for i, (p, parent) in enumerate(zip(predicted, parents)):
            if parent == -1 or parent in kept:
                b = self._bin(p)
                self.tested[b] += 1
                self.accepted[b] += i in kept


class SuffixDrafter(Forkable):
    per_request = ()                    # begin() makes the request's trie; the global trie and calibration are shared
    hidden_layers: tuple[int, ...] = ()

    def __init__(self, depth: int = 24, min_match: int = 2, max_spec_factor: float = 4.0, max_draft: int = 32,
                 min_prob: float = 0.1, max_global_nodes: int = 200_000, use_global: bool = True, learn: bool = True,
                 costs: CostCurve | None = None):
        if min_match < 1 or min_match >= depth:
            raise ConfigError(f"min_match={min_match} is invalid; accepted: 1 <= min_match < depth ({depth})")
        if max_spec_factor <= 0 or max_draft < 1:
            raise ConfigError(f"max_spec_factor={max_spec_factor}, max_draft={max_draft}; accepted: "
                              f"max_spec_factor > 0 and max_draft >= 1")
        if not 0 <= min_prob < 1:
            raise ConfigError(f"min_prob={min_prob} is invalid; accepted: 0 <= min_prob < 1")
        if max_global_nodes < 0:
            raise ConfigError(f"max_global_nodes={max_global_nodes} is invalid; accepted: an integer >= 0")
        self.depth, self.min_match, self.max_spec_factor = depth, min_match, max_spec_factor
        self.max_draft, self.min_prob, self.use_global, self.learn = max_draft, min_prob, use_global, learn
        self.global_trie = GlobalTrie(depth, max_global_nodes)
        self.calibration = Calibration()
        self.costs = costs
        self.trie = IncrementalTrie(depth)
        self._draft = _empty()
        self._raw: list[float] = []
        self.source = ""                 # which trie the last draft came from: "request", "global" or ""

    def begin(self, prompt_ids: list[int]) -> None:
        self.trie = IncrementalTrie(self.depth)
        self.trie.extend(list(prompt_ids))

    def propose(self, state: DecodeState) -> Draft:
        self.trie.extend(state.tokens[len(self.trie.tokens):])
        budget = min(self.max_draft, state.max_nodes)
        best, best_raw, best_source, best_value = _empty(), [], "", 0.0
        sources = [("request", self.trie)] + ([("global", self.global_trie)] if self.use_global else [])
        for source, trie in sources:
            node, n = trie.match(state.tokens, self.min_match)
            if node is None:
                continue
            size = min(budget, max(1, int(self.max_spec_factor * n)))
            draft, raw = self._grow(node, size, state.max_depth)
            value = float(draft.confidence.sum()) if draft.size else 0.0
            if value > best_value:
                best, best_raw, best_source, best_value = draft, raw, source, value
        if self.costs is not None and best.size:
            keep = worth_verifying(best.confidence.tolist(), self.costs)
            best, best_raw = best.select(keep), [best_raw[i] for i in keep]
        self._draft, self._raw, self.source = best, best_raw, best_source
        return best

    def _grow(self, node: Node, size: int, max_depth: int) -> tuple[Draft, list[float]]:
        """The tree of at most `size` nodes (depth <= max_depth) of the most probable continuations below `node`,
        best first; (draft with calibrated path confidences, each node's raw conditional probability)."""
        tokens, parents, raw, path_conf = [], [], [], []
        heap: list[tuple[float, int, Node, int, float, int, int]] = []
        tie = 0

        def push(trie_node: Node, parent: int, parent_prob: float, depth: int) -> None:
            nonlocal tie
            if depth > max_depth or not trie_node.children:
                return
            total = sum(c.count for c in trie_node.children.values())
            for tok, child in trie_node.children.items():
                cond = child.count / total
                prob = parent_prob * cond
                if prob >= self.min_prob:
                    tie += 1
                    heapq.heappush(heap, (-prob, tie, child, parent, cond, tok, depth))

        push(node, -1, 1.0, 1)
        while heap and len(tokens) < size:
            neg, _, child, parent, cond, tok, depth = heapq.heappop(heap)
            conf = (path_conf[parent] if parent >= 0 else 1.0) * self.calibration.calibrated(cond)
            tokens.append(tok)
            parents.append(parent)
            raw.append(cond)
            path_conf.append(conf)
            push(child, len(tokens) - 1, -neg, depth + 1)
        draft = Draft(torch.tensor(tokens, dtype=torch.long), torch.tensor(parents, dtype=torch.long))
        draft.confidence = torch.tensor(path_conf, dtype=torch.float32)
        return draft, raw

    def on_accept(self, result: VerifyResult) -> None:
        if self._draft.size:
            self.calibration.update(self._raw, self._draft.parents.tolist(), result.accepted_path)

    def end(self, output_ids: list[int], learn: bool = True) -> None:
        """The request ended with these output tokens: the global trie learns them (unless the drafter or the
        request opted out)."""
        if self.use_global and self.learn and learn:
            self.global_trie.learn(list(output_ids))

    def warm(self, responses: list[list[int]]) -> None:
        for tokens in responses:
            self.global_trie.learn(tokens)


def read_responses(path: str | Path, target) -> list[list[int]]:
    """Token ids of the responses in a JSONL file: each line an object with "output_ids" (token ids), or a string
    in "response", "text" or "output" (tokenised without a chat template)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"warm={str(path)!r} is not a file; accepted: a JSONL file of earlier responses")
    out = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ConfigError(f"{p}:{n} is not JSON; accepted: one object per line with output_ids or a "
                              f"response / text / output string") from None
        ids = row.get("output_ids") if isinstance(row, dict) else None
        if ids is None:
            text = next((row[k] for k in ("response", "text", "output") if isinstance(row, dict) and
                         isinstance(row.get(k), str)), None)
            if text is None:
                raise ConfigError(f"{p}:{n} has no output_ids and no response / text / output string")
            ids = target.encode(text, chat=False)
        out.append([int(t) for t in ids])
    return out


def _empty() -> Draft:
    draft = Draft.chain(torch.zeros(0, dtype=torch.long))
    draft.confidence = torch.zeros(0)
    return draft


@register("suffix", "suffix decoding: continuations of the context's suffix in this request and in earlier "
                    "responses (learns from served traffic; no extra model)")
def make_suffix(target, fit: bool = False, warm: str | None = None, **options) -> SuffixDrafter:
    drafter = SuffixDrafter(costs=fit_costs(target, fit), **options)
    if warm:
        drafter.warm(read_responses(warm, target))
    return drafter
