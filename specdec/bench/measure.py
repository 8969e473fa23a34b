"""One timed generation (a `Measurement`) from a native method, and the median over repeats.

A runner is anything with ``generate(prompt_ids, max_new_tokens, sampling) -> Measurement``: a native
method (`NativeRunner`, one SpeculativeDecoder over the shared target) or a transformers baseline
(specdec.bench.baselines). Seconds are wall-clock around the whole request, prefill included.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace

from specdec.config import SamplingParams


@dataclass
class Measurement:
    token_ids: list[int]                # new tokens, stop token excluded
    seconds: float                      # wall-clock of the request (median when repeated)
    target_forwards: int | None = None  # None where the runner cannot tell (transformers baselines)
    emitted_tokens: int | None = None   # sum over steps of n_accepted + 1
    accepted_per_depth: list[int] = field(default_factory=list)
    reached_per_depth: list[int] = field(default_factory=list)
    draft_seconds: float | None = None
    verify_seconds: float | None = None
    prompt_tokens: int = 0
    finish_reason: str = "length"

    @property
    def new_tokens(self) -> int:
        return len(self.token_ids)


class NativeRunner:
    """A specdec method (drafter name + options) decoding the shared target."""

    def __init__(self, target, method: str, options: dict | None = None, rule: str = "exact"):
        from specdec.drafters import make_drafter
        from specdec.engine import SpeculativeDecoder
        self.decoder = SpeculativeDecoder(target, make_drafter(method, target, options or {}), rule=rule)

    def generate(self, prompt_ids: list[int], max_new_tokens: int, sampling: SamplingParams) -> Measurement:
        t0 = time.perf_counter()
        res = self.decoder.generate(list(prompt_ids), max_new_tokens, sampling)
        seconds = time.perf_counter() - t0
        s = res.stats
        return Measurement(res.token_ids, seconds, s.target_forwards, s.emitted_tokens,
                           list(s.accepted_per_depth), list(s.reached_per_depth), s.draft_seconds,
                           s.verify_seconds, s.prompt_tokens, res.finish_reason)


def measure(runner, prompt_ids: list[int], max_new_tokens: int, sampling: SamplingParams, repeats: int,
            on_repeat=None) -> Measurement:
    """Run `repeats` times; the first run's tokens and counts, median seconds (total, draft, verify)."""
    runs = []
    for _ in range(repeats):
        runs.append(runner.generate(prompt_ids, max_new_tokens, sampling))
        if on_repeat:
            on_repeat()
    med = lambda xs: statistics.median(xs) if None not in xs else None  # noqa: E731
    return replace(runs[0], seconds=med([r.seconds for r in runs]),
                   draft_seconds=med([r.draft_seconds for r in runs]),
                   verify_seconds=med([r.verify_seconds for r in runs]))
