"""Layer-skipping self-speculation: the target itself, with some layers skipped, is the drafter.

Draft & Verify (Zhang et al. 2023), LayerSkip (Elhoushi et al. 2024) and SWIFT (Xia et al. 2024) draft with a
subset of the target's own layers: no extra weights. Each step runs the root, then each drafted token, through
the kept layers only, on the target's own KV cache: the kept layers' KV of committed tokens come from the full
verification passes, the drafted positions' KV are written past ``cache.length`` and the length is rolled
back afterwards, so the next verification pass overwrites them. Drafting stops early when the draft is unsure
(max draft probability below ``threshold``), decided before a token is drawn, so sampling stays lossless.

The skip set is given by hand or searched on calibration prompts (`specdec.drafters.skip_search`). Unless the
estimated speedup on this machine is above 1 (with some drafts accepted on the calibration prompts) the drafter
says so on stderr and proposes nothing (plain decoding steps), unless ``force=True``.
"""

from __future__ import annotations

import math
import sys

import torch
from torch import Tensor

from specdec.drafters import register
from specdec.drafters.base import DecodeState, Forkable
from specdec.drafters.schedule import DraftLength
from specdec.drafters.skip_search import Policy, SkipChoice, choose_skip_set
from specdec.errors import ConfigError
from specdec.models.llama import LlamaRuntime
from specdec.types import Draft, VerifyResult
from specdec.verify.probs import logits_to_probs

DEFAULT_THRESHOLD = 0.6     # used with a hand-given, forced skip set (no calibration run)


class LayerSkipDrafter(Forkable):
    per_request = ("schedule",)
    hidden_layers: tuple[int, ...] = ()

    def __init__(self, runtime: LlamaRuntime, skip: tuple[int, ...], threshold: float, schedule: DraftLength,
                 active: bool = True, choice: SkipChoice | None = None):
        self.runtime, self.skip, self.threshold, self.schedule = runtime, skip, threshold, schedule
        self.kept = tuple(i for i in range(runtime.num_layers) if i not in skip)
        self.active = active            # False: the estimate said drafting loses; propose nothing
        self.choice = choice            # the search / estimate behind this drafter (None when forced by hand)
        self._proposed_depth = 0

    def begin(self, prompt_ids: list[int]) -> None:
        self.schedule.reset()

    def propose(self, state: DecodeState) -> Draft:
        depth = min(self.schedule.length, state.max_depth, state.max_nodes) if self.active else 0
        if depth <= 0:
            self._proposed_depth = 0
            return Draft.chain(torch.zeros(0, dtype=torch.long))
        if state.cache is None:
            raise ValueError("layerskip drafts on the target's KV cache, but DecodeState.cache is None")
        tokens, probs = self._draft_chain(state, depth)
        self._proposed_depth = len(tokens)
        draft_probs = None if state.sampling.greedy or not probs else torch.stack(probs)   # [k, vocab]
        return Draft.chain(torch.tensor(tokens, dtype=torch.long), draft_probs)

    def _draft_chain(self, state: DecodeState, depth: int) -> tuple[list[int], list[Tensor]]:
        """Up to `depth` tokens after the root, each from the kept layers; the cache length is restored."""
        cache, rt = state.cache, self.runtime
        start, tok = cache.length, state.tokens[-1]
        tokens: list[int] = []
        probs: list[Tensor] = []
        try:
            while len(tokens) < depth:
                ids = torch.tensor([[tok]], device=rt.device)
                logits = rt.forward(ids, cache, layers=self.kept, logits="last").logits[0, -1].float()  # [vocab]
                if state.sampling.greedy:
                    if float(torch.softmax(logits, -1).max()) < self.threshold:
                        break
                    tok = int(logits.argmax())
                else:
                    dist = logits_to_probs(logits, state.sampling)                           # [vocab]
                    if float(dist.max()) < self.threshold:                                   # before drawing
                        break
                    tok = state.sample(dist, depth=len(tokens) + 1)
                    probs.append(dist.cpu())
                tokens.append(tok)
        finally:
            cache.rollback(cache.length - start)
        return tokens, probs

    def on_accept(self, result: VerifyResult) -> None:
        self.schedule.update(result.n_accepted, self._proposed_depth)


def parse_skip(skip, num_layers: int) -> tuple[int, ...] | None:
    """'auto' -> None; a layer index, a list of them or a string "3,5,7" -> sorted unique tuple."""
    accepted = f"'auto' or layer indices in [0, {num_layers - 1}] such as [3, 5] or \"3,5\", not every layer"
    if isinstance(skip, str) and skip.strip().lower() == "auto":
        return None
    if isinstance(skip, str):
        parts = [p.strip() for p in skip.split(",") if p.strip()]
        layers = [int(p) for p in parts] if all(p.lstrip("-").isdigit() for p in parts) else None
    elif _is_int(skip):
        layers = [skip]
    else:
        layers = list(skip) if isinstance(skip, (list, tuple)) and all(map(_is_int, skip)) else None
    if layers is None:
        raise ConfigError(f"skip={skip!r} is not a list of layer indices; accepted: {accepted}")
    if any(not 0 <= i < num_layers for i in layers):
        raise ConfigError(f"skip={skip!r} names a layer the {num_layers}-layer model lacks; accepted: {accepted}")
    if len(set(layers)) == num_layers:
        raise ConfigError(f"skip={skip!r} skips every layer; accepted: {accepted}")
    return tuple(sorted(set(layers)))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_options(threshold, calibration_tokens, search_seconds, force) -> None:
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or math.isnan(threshold) or not 0 <= threshold < 1):
        raise ConfigError(f"threshold={threshold!r} is invalid; accepted: a number in [0, 1) or null (calibrated)")
    if not _is_int(calibration_tokens) or not 4 <= calibration_tokens <= 512:
        raise ConfigError(f"calibration_tokens={calibration_tokens!r} is invalid; accepted: an integer in [4, 512]")
    if isinstance(search_seconds, bool) or not isinstance(search_seconds, (int, float)) or not search_seconds > 0:
        raise ConfigError(f"search_seconds={search_seconds!r} is invalid; accepted: a positive number")
    if not isinstance(force, bool):
        raise ConfigError(f"force={force!r} is invalid; accepted: true or false")


@register("layerskip", "self-speculation: the target with some layers skipped drafts (no extra weights); "
                       "skip set searched on calibration prompts or given by hand")
def make_layerskip(target, skip="auto", threshold: float | None = None, num_draft: int = 4, adaptive: bool = True,
                   max_draft: int = 12, force: bool = False, calibration_tokens: int = 32,
                   search_seconds: float = 20.0) -> LayerSkipDrafter:
    """skip: 'auto' or layer indices. threshold: stop drafting when the max draft prob falls below it (None:
    calibrated, or 0.6 when nothing is calibrated). force: draft even when the estimated speedup is not above 1."""
    rt = target.runtime
    if not isinstance(rt, LlamaRuntime):
        raise ConfigError(f"layerskip needs a native model (Llama family runtime), but {target.name!r} runs on "
                          f"the transformers adapter; accepted: a model the native runtime loads")
    skip_set = parse_skip(skip, rt.num_layers)
    _check_options(threshold, calibration_tokens, search_seconds, force)
    schedule = DraftLength(num_draft, adaptive, maximum=max(max_draft, num_draft))
    if force and skip_set is not None:
        thr = DEFAULT_THRESHOLD if threshold is None else threshold
        return LayerSkipDrafter(rt, skip_set, thr, schedule)
    policy = Policy(threshold, num_draft, adaptive, max_draft)
    choice = choose_skip_set(target, skip_set, policy, calibration_tokens=calibration_tokens,
                             budget_s=search_seconds)
    active = force or choice.pays_off
    print(_describe(choice, active), file=sys.stderr)
    return LayerSkipDrafter(rt, choice.skip, choice.threshold, schedule, active, choice)


def _describe(choice: SkipChoice, active: bool) -> str:
    how = "remembered from a calibration of" if choice.cached else "calibrated in"
    what = (f"layerskip: skip layers {list(choice.skip)}, threshold {choice.threshold}: estimated speedup "
            f"{choice.estimated_speedup:.2f}x on this machine ({choice.tokens_per_step:.2f} tokens per target "
            f"forward on the calibration prompts; {how} {choice.seconds:.1f} s)")
    if choice.pays_off:
        return what
    if active:
        return f"{what}; not above 1, drafting anyway (force=true)"
    return (f"{what}. Warning: estimated speedup {choice.estimated_speedup:.2f}x is not above 1, so layerskip "
            f"proposes nothing (plain decoding steps); pass force=true to draft anyway")
