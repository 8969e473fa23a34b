"""The one timer for work on this machine: device-synchronised, warmed up, repeated, interleaved.

Every cost that sizes drafts or is reported is timed here: the verification cost curve that `fit` uses
(specdec/drafters/cost.py), layer-skip calibration (specdec/drafters/skip_search.py), `specdec cost-curve`
(specdec/bench/cost_curve.py) and the roofline's bandwidth (specdec/bench/roofline.py). On CUDA the device is
synchronised before the clock starts and before it stops, so a timing covers the kernels, not their launch.
Timings on a shared machine are noisy: the calls are timed round by round, interleaved, so that drift hits all
alike, and each keeps every repeat (read `min`, the least disturbed run, or `median`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Timing:
    seconds: tuple[float, ...]          # each timed repeat, in order

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (a no-op off CUDA)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(calls: dict[Hashable, Callable[[], object]], device: torch.device | str, *, repeats: int,
               warmup: int = 1) -> dict[Hashable, Timing]:
    """Each call timed `repeats` times after `warmup` untimed rounds; every round runs every call once."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats} is invalid; accepted: an integer >= 1")
    times: dict[Hashable, list[float]] = {key: [] for key in calls}
    for round_ in range(warmup + repeats):
        for key, call in calls.items():
            synchronize(device)
            t0 = time.perf_counter()
            call()
            synchronize(device)
            if round_ >= warmup:
                times[key].append(time.perf_counter() - t0)
    return {key: Timing(tuple(t)) for key, t in times.items()}


class ForwardStep:
    """A runtime's forward of k new tokens after a fixed context, the cache rolled back after each call."""

    def __init__(self, rt, context: Tensor, max_rows: int, *, logits: str = "all",
                 layers: tuple[int, ...] | None = None):
        # context [1, c] int64
        self.rt, self.logits, self.layers = rt, logits, layers
        self.cache = rt.new_cache(context.shape[1] + max_rows)
        with torch.inference_mode():
            rt.forward(context.to(rt.device), self.cache, logits="none")

    def __call__(self, tokens: Tensor) -> None:
        # tokens [1, k] int64
        self.rt.forward(tokens.to(self.rt.device), self.cache, logits=self.logits, layers=self.layers)
        self.cache.rollback(tokens.shape[1])


@torch.inference_mode()
def time_forwards(steps: dict[Hashable, ForwardStep], ks: list[int], *, repeats: int, warmup: int = 1,
                  vocab: int | None = None, seed: int = 0) -> dict[tuple[Hashable, int], Timing]:
    """{(step name, k): Timing} of each step scoring k tokens (random ids below `vocab`, zeros without),
    all interleaved; the device is that of the first step's runtime."""
    device = next(iter(steps.values())).rt.device
    g = torch.Generator().manual_seed(seed)
    tokens = {k: (torch.randint(0, vocab, (1, k), generator=g) if vocab else torch.zeros(1, k, dtype=torch.long))
              .to(device) for k in ks}                                                   # [1, k] each
    calls = {(name, k): (lambda s=step, t=tokens[k]: s(t)) for k in ks for name, step in steps.items()}
    return time_calls(calls, device, repeats=repeats, warmup=warmup)
