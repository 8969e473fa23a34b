"""Which target layers the layerskip drafter skips: calibrate on a few prompts, estimate the speedup, search.

1. Calibration text (`calibration_set`): a few generic prompts (the model's chat template when it has a
   tokenizer, seeded random ids when it has none), each continued greedily by the full target; the KV cache of
   that generation (full-model KV of every position) is kept.
2. Costs, timed on this machine (`measure_costs`): the target's verification cost curve (specdec/drafters/cost.py,
   the same one `fit` uses: k tokens scored with logits for all of them) and a forward of one token through no
   layer (embedding, final norm, lm_head). A draft forward through K of L
   layers costs ``head + K / L * (full(1) - head)`` (SmolLM2-135M, float32, 2 idle cores: head 4.3 ms of a
   31 ms forward, mostly the tied 49k-token lm_head; a draft through 28 layers measured 28 ms, model 29.5).
3. Draft predictions of a skip set, teacher-forced on the calibration text, two ways:
   - `screen_agreement` (cheap, one pass per prompt): the kept layers run alone over the whole text, so they
     read their own KV for every past token. Pessimistic (skipping 4 of 30 layers of SmolLM2: 64% agreement
     vs 81% when past tokens carry full KV), but it ranks sets of one size well.
   - `draft_predictions` (faithful): chunks of ``chunk`` tokens (the draft length), last chunk first, each run
     through the kept layers on top of the full-model KV of the text before it, as when drafting: the token
     at offset j of a chunk sees j draft-KV predecessors, like a draft at depth j + 1.
4. `score`: replay the drafter's policy (confidence threshold, draft-length schedule) over the faithful
   predictions: estimated speedup = tokens / (draft forwards * draft cost + verify cost of each step), relative
   to one full forward per token.
5. `search_skip_set`, greedy: each round screens adding each of the ``width`` remaining layers that change the
   residual stream least (1 - cos(layer input, layer output)), keeps the one with the highest agreement, and
   scores that set; it stops at the deadline, after ``patience`` rounds without a better estimate, or when only
   the protected first and last layers are left.
6. `choose_skip_set` memoises per runtime in memory, and on disk (specdec cache dir) for models loaded from a
   file, keyed by the model's source and every option that changes the answer.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import weakref
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from specdec import timing
from specdec.drafters.cost import CostCurve, cost_curve
from specdec.drafters.schedule import DraftLength
from specdec.models.cache_dir import cache_root

CALIBRATION_PROMPTS = (
    "Describe what happens to water when it is heated until it boils.",
    "Write a short, friendly email inviting a colleague to lunch next week.",
    "Give three practical tips for learning a new language, one sentence each.",
)
THRESHOLDS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)   # tried when the threshold is left to calibration
MIN_CALIBRATION = 16    # continuation tokens per prompt that a deadline cannot cut


@dataclass(frozen=True)
class Policy:
    """The drafting rules the replay imitates (same meaning as the drafter's options)."""

    threshold: float | None            # None: calibrated (the best of THRESHOLDS)
    num_draft: int
    adaptive: bool
    max_draft: int

    def schedule(self) -> DraftLength:
        return DraftLength(self.num_draft, self.adaptive, maximum=max(self.max_draft, self.num_draft))


@dataclass(frozen=True)
class CostModel:
    """Seconds per forward here: verify(k) for k tokens through every layer; head: one token through none."""

    verify: CostCurve
    head: float
    num_layers: int

    def draft(self, kept: int) -> float:
        """One token through `kept` layers, plus embedding and lm_head."""
        return self.head + kept / self.num_layers * (self.verify(1) - self.head)


@dataclass(frozen=True)
class Calibration:
    sequences: tuple[tuple[int, ...], ...]   # prompt + greedy continuation of the full target
    prompt_lengths: tuple[int, ...]
    caches: tuple                            # KVCache per sequence: full-model KV of all but its last token


@dataclass(frozen=True)
class SkipChoice:
    skip: tuple[int, ...]
    threshold: float
    estimated_speedup: float           # vs one full forward per token, from the replay and the cost model
    tokens_per_step: float             # replayed mean accepted length (incl. the bonus/recovered token)
    seconds: float                     # time the search (or the single estimate) took
    cached: bool = False               # True when this answer was remembered, not computed now

    @property
    def pays_off(self) -> bool:
        """Drafting is expected to beat plain decoding: some drafts accepted and an estimate above 1."""
        return self.tokens_per_step > 1.0 and self.estimated_speedup > 1.0


def calibration_set(target, tokens: int, deadline: float = float("inf")) -> Calibration:
    """Each calibration prompt followed by up to `tokens` greedy target tokens (fewer at EOS, or at the deadline
    once every text has MIN_CALIBRATION of them)."""
    rt = target.runtime
    if target.tokenizer is not None:
        prompts = [target.encode(p, chat=True) for p in CALIBRATION_PROMPTS]
    else:   # a model driven by raw ids (tests): seeded random prompts
        g = torch.Generator().manual_seed(0)
        prompts = [torch.randint(0, rt.vocab_size, (16,), generator=g).tolist() for _ in CALIBRATION_PROMPTS]
    prompts = [p[-(rt.max_context - tokens - 1):] for p in prompts]
    caches = [rt.new_cache(len(p) + tokens) for p in prompts]
    nexts = [_next_token(rt, p, c) for p, c in zip(prompts, caches)]
    seqs = [list(p) for p in prompts]
    for step in range(1, tokens + 1):            # round robin, so a deadline shortens every text alike
        for i, tok in enumerate(nexts):
            if tok is None or tok in target.eos_token_ids:
                nexts[i] = None
                continue
            seqs[i].append(tok)
            nexts[i] = _next_token(rt, [tok], caches[i]) if len(seqs[i]) - len(prompts[i]) < tokens else None
        if time.perf_counter() > deadline and step >= MIN_CALIBRATION:
            break
    for seq, cache in zip(seqs, caches):         # keep the KV of every token but the last
        cache.crop(len(seq) - 1)
    return Calibration(tuple(map(tuple, seqs)), tuple(map(len, prompts)), tuple(caches))


def _next_token(rt, ids: list[int], cache) -> int:
    logits = rt.forward(torch.tensor([ids], device=rt.device), cache, logits="last").logits   # [1, 1, vocab]
    return int(logits[0, -1].argmax())


def measure_costs(rt, context: list[int], repeats: int = 3) -> CostModel:
    """The runtime's verification curve (memoised) and one token through no layer after `context` (minimum of
    a few runs after a warm-up, by the one timer of specdec/timing.py)."""
    verify = cost_curve(rt)
    head = timing.ForwardStep(rt, torch.tensor([context]), 1, logits="last", layers=())
    seconds = timing.time_forwards({"head": head}, [1], repeats=repeats)["head", 1].min
    return CostModel(verify, min(seconds, verify(1)), rt.num_layers)


def screen_agreement(rt, calib: Calibration, kept: tuple[int, ...]) -> float:
    """Fraction of continuation tokens the kept layers, run alone over each whole text, predict (argmax)."""
    hits, total = 0, 0
    for seq, p in zip(calib.sequences, calib.prompt_lengths):
        out = rt.forward(torch.tensor([seq], device=rt.device), rt.new_cache(len(seq)), layers=kept,
                         logits="none", hidden_layers=(-1,))
        pred = rt.lm_head(out.hidden[-1][0, p - 1:-1]).argmax(-1).cpu()      # [n]
        hits += int((pred == torch.tensor(seq[p:])).sum())
        total += len(seq) - p
    return hits / max(total, 1)


def draft_predictions(rt, calib: Calibration, kept: tuple[int, ...], chunk: int) -> list[tuple[list, list]]:
    """Per text: (draft argmax == text token, draft max prob) per continuation token, chunked as in drafting."""
    out = []
    for seq, p, full in zip(calib.sequences, calib.prompt_lengths, calib.caches):
        cache = copy.deepcopy(full)              # chunks overwrite the kept layers' KV at their positions
        agree, conf = [], []
        for c in reversed(range(p - 1, len(seq) - 1, chunk)):   # last chunk first: earlier KV stays full
            end = min(c + chunk, len(seq) - 1)
            cache.crop(c)
            logits = rt.forward(torch.tensor([seq[c:end]], device=rt.device), cache, layers=kept).logits[0]
            top = torch.softmax(logits.float(), dim=-1).max(dim=-1)              # [end - c] each
            agree = (top.indices.cpu() == torch.tensor(seq[c + 1:end + 1])).tolist() + agree
            conf = top.values.tolist() + conf
        out.append((agree, conf))
    return out


def replay(agree: list[bool], conf: list[float], policy: Policy, costs: CostModel, kept: int) -> tuple[int, float, int]:
    """(tokens emitted, seconds, steps) of speculative decoding over one teacher-forced text.

    agree[j] / conf[j]: the draft's prediction of continuation token j. A step whose root precedes token r
    drafts while the confidence holds, keeps the leading agreements and emits one more token.
    """
    schedule, r, tokens, seconds, steps = policy.schedule(), 0, 0, 0.0, 0
    n = len(agree)
    while r < n:
        depth, fed, drafted = min(schedule.length, n - r - 1), 0, 0
        while drafted < depth:
            fed += 1
            if conf[r + drafted] < policy.threshold:
                break
            drafted += 1
        accepted = next((i for i in range(drafted) if not agree[r + i]), drafted)
        schedule.update(accepted, drafted)
        seconds += fed * costs.draft(kept) + costs.verify(drafted + 1)
        tokens, steps, r = tokens + accepted + 1, steps + 1, r + accepted + 1
    return tokens, seconds, steps


def score(rt, calib: Calibration, costs: CostModel, skip: tuple[int, ...], policies: list[Policy]) -> SkipChoice:
    """The best of `policies` (they differ in threshold) for this skip set, from the faithful predictions."""
    kept = tuple(i for i in range(rt.num_layers) if i not in skip)
    preds = draft_predictions(rt, calib, kept, policies[0].num_draft)
    best = None
    for policy in policies:
        tokens, secs, steps = (sum(x) for x in zip(*[replay(a, c, policy, costs, len(kept)) for a, c in preds]))
        speedup = tokens / secs * costs.verify(1) if secs else 0.0
        choice = SkipChoice(skip, policy.threshold, speedup, tokens / max(steps, 1), 0.0)
        if best is None or _rank(choice) > _rank(best):
            best = choice
    return best


def _rank(choice: SkipChoice) -> tuple[bool, float]:
    """Higher is better; a policy that never gets a draft accepted cannot beat vanilla, whatever it costs."""
    return choice.tokens_per_step > 1.0, choice.estimated_speedup


def layer_ranking(rt, calib: Calibration) -> list[int]:
    """Layers from least to most influential: mean 1 - cos(residual before, residual after) on the texts."""
    layers = tuple(range(rt.num_layers))
    influence = torch.zeros(rt.num_layers)
    for seq in calib.sequences:
        ids = torch.tensor([seq], device=rt.device)
        res = rt.forward(ids, rt.new_cache(len(seq)), logits="none", hidden_layers=layers)
        before = torch.nn.functional.embedding(ids, rt.embed)[0].float()      # [t, hidden]
        for i in layers:
            after = res.hidden[i][0].float()                                   # [t, hidden]
            influence[i] += float((1 - torch.cosine_similarity(before, after, dim=-1)).mean())
            before = after
    return influence.argsort().tolist()


def search_skip_set(rt, calib: Calibration, costs: CostModel, policies: list[Policy], *, deadline: float,
                    width: int = 4, patience: int = 3) -> SkipChoice:
    """Greedy search (module docstring, point 5); the best set seen, sorted. Always scores at least one set."""
    protected = {0, rt.num_layers - 1} if rt.num_layers >= 3 else set(range(rt.num_layers))
    ranking = [i for i in layer_ranking(rt, calib) if i not in protected]
    skip: tuple[int, ...] = ()
    best, stale = None, 0
    while ranking and stale < patience and (best is None or time.perf_counter() < deadline):
        sets = [tuple(sorted(skip + (layer,))) for layer in ranking[:width]]
        skip = max(sets, key=lambda s: screen_agreement(rt, calib, _kept(rt, s)))
        ranking = [i for i in ranking if i not in skip]
        choice = score(rt, calib, costs, skip, policies)
        best, stale = (choice, 0) if best is None or _rank(choice) > _rank(best) else (best, stale + 1)
    return best if best is not None else score(rt, calib, costs, (), policies)   # nothing may be skipped


def _kept(rt, skip: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(i for i in range(rt.num_layers) if i not in skip)


_MEMORY: weakref.WeakKeyDictionary[object, dict[str, SkipChoice]] = weakref.WeakKeyDictionary()


def choose_skip_set(target, skip: tuple[int, ...] | None, policy: Policy, *, calibration_tokens: int,
                    budget_s: float) -> SkipChoice:
    """Search a skip set (skip None) or estimate a given one within about budget_s seconds; memoised."""
    rt = target.runtime
    key = json.dumps({"v": 3, "source": str(target.source), "layers": rt.num_layers, "dtype": str(rt.dtype),
                      "quant": getattr(rt, "quant", None), "device": str(rt.device),
                      "threads": torch.get_num_threads(), "skip": skip,
                      "policy": asdict(policy), "calibration_tokens": calibration_tokens}, sort_keys=True)
    memo = _MEMORY.setdefault(rt, {})
    if key in memo:
        return replace(memo[key], cached=True)
    path = _disk_path(target, key)
    memo[key] = _load(path) or _run_choice(target, skip, policy, calibration_tokens, budget_s)
    if path is not None and not memo[key].cached:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**asdict(memo[key]), "key": json.loads(key)}, indent=1))
    return memo[key]


def _run_choice(target, skip: tuple[int, ...] | None, policy: Policy, calibration_tokens: int,
                budget_s: float) -> SkipChoice:
    t0 = time.perf_counter()
    rt = target.runtime
    calib = calibration_set(target, calibration_tokens, deadline=t0 + 0.4 * budget_s)
    costs = measure_costs(rt, list(calib.sequences[0]))
    thresholds = THRESHOLDS if policy.threshold is None else (policy.threshold,)
    policies = [replace(policy, threshold=t) for t in thresholds]
    if skip is None:
        choice = search_skip_set(rt, calib, costs, policies, deadline=t0 + budget_s)
    else:
        choice = score(rt, calib, costs, skip, policies)
    return replace(choice, seconds=time.perf_counter() - t0)


def _disk_path(target, key: str) -> Path | None:
    """Where a model loaded from a file or directory keeps its choice; None for in-memory models."""
    if not Path(str(target.source)).exists():
        return None
    return cache_root() / "layerskip" / (hashlib.sha256(key.encode()).hexdigest()[:20] + ".json")


def _load(path: Path | None) -> SkipChoice | None:
    if path is None or not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        return SkipChoice(tuple(d["skip"]), d["threshold"], d["estimated_speedup"], d["tokens_per_step"],
                          d["seconds"], cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None
