"""One measured generation (a `Measurement`) from a native method, and the median over repeats.

A runner is anything with ``generate(prompt_ids, max_new_tokens, sampling, learn) -> Measurement`` (learn=False:
a drafter that learns from outputs does not keep this one): a native
method (`NativeRunner`, one SpeculativeDecoder over the shared target) or a transformers baseline
(specdec.bench.baselines). A native measurement carries the engine's own record of the request
(`GenerationStats`, the one the Python API and `specdec generate --json` read); seconds are the whole request,
prefill included.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from specdec.config import SamplingParams
from specdec.types import GenerationStats

TIMES = ("seconds", "prefill_seconds", "draft_seconds", "verify_seconds")   # medianed over repeats


@dataclass
class Measurement:
    token_ids: list[int]                # new tokens, stop token excluded
    seconds: float                      # the whole request (median when repeated)
    stats: GenerationStats | None = None  # the engine's record; None where the runner has none (transformers)
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

    def generate(self, prompt_ids: list[int], max_new_tokens: int, sampling: SamplingParams,
                 learn: bool = True) -> Measurement:
        """learn=False: a drafter that learns from outputs (suffix) does not keep this one (warm-up runs, repeats
        before the last), so no measured generation drafts from its own earlier answer."""
        res = self.decoder.generate(list(prompt_ids), max_new_tokens, sampling, learn=learn)
        s = res.stats
        return Measurement(res.token_ids, s.seconds, s, s.prompt_tokens, res.finish_reason)


def measure(runner, prompt_ids: list[int], max_new_tokens: int, sampling: SamplingParams, repeats: int,
            on_repeat=None) -> Measurement:
    """Run `repeats` times; the first run's tokens and counts, median seconds (total, prefill, draft, verify)."""
    runs = []
    for i in range(repeats):
        runs.append(runner.generate(prompt_ids, max_new_tokens, sampling, learn=i == repeats - 1))
        if on_repeat:
            on_repeat()
    first = runs[0]
    stats = None if first.stats is None else replace(
        first.stats, **{t: statistics.median(getattr(r.stats, t) for r in runs) for t in TIMES})
    return replace(first, seconds=statistics.median(r.seconds for r in runs), stats=stats)
