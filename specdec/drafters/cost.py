"""The target's verification cost curve, measured on this machine, and the draft size it favours.

Verifying k tokens costs more than one token, by how much depends on the machine: on the 2-core development CPU
(float32) 16 tokens cost about 2.2 single-token passes, on an H200 about 1.6 (docs/runtime.md). A fixed tree
size is therefore right on one machine and wrong on another. Drafters that score their candidates (an expected
acceptance per node) size each draft to maximise expected tokens per second instead:

    n* = argmax_n (1 + g_1 + ... + g_n) / (draft_seconds + verify_seconds(n + 1))

where g_i is the i-th best candidate's estimated probability of being accepted (candidates in an order where
every node comes after its parent, so any prefix is a valid tree), 1 counts the token the target adds itself,
and verify_seconds(n + 1) scores the n drafted tokens plus the root. The curve is timed once per runtime
(memoised) after a short context, `logits="all"` as verification runs, by the one timer (specdec/timing.py):
minimum over a few interleaved rounds after a warm-up, made monotone in k.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from specdec import timing
from specdec.errors import ConfigError

SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
_CURVES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class CostCurve:
    sizes: tuple[int, ...]        # tokens scored in one forward
    seconds: tuple[float, ...]    # its time, non-decreasing

    def __call__(self, k: float) -> float:
        """Seconds to verify k tokens: piecewise linear between measured sizes, linear beyond the last two."""
        s, t = self.sizes, self.seconds
        if k <= s[0]:
            return t[0]
        for i in range(1, len(s)):
            if k <= s[i] or i == len(s) - 1:
                return t[i - 1] + (t[i] - t[i - 1]) * (k - s[i - 1]) / (s[i] - s[i - 1])
        return t[-1]              # unreachable: the loop returns at the last segment


def best_size(gains: list[float], curve: CostCurve, draft_seconds: float = 0.0) -> int:
    """How many of the candidates (best first, each after its parent) to verify: the n in 0..len(gains) with the
    highest expected tokens per second, (1 + sum(gains[:n])) / (draft_seconds + curve(n + 1))."""
    best_n, best_rate, expected = 0, 1.0 / (draft_seconds + curve(1)), 1.0
    for n, g in enumerate(gains, start=1):
        expected += g
        rate = expected / (draft_seconds + curve(n + 1))
        if rate > best_rate:
            best_n, best_rate = n, rate
    return best_n


def worth_verifying(confidence: list[float], curve: CostCurve, draft_seconds: float = 0.0) -> list[int]:
    """The nodes of a draft to verify, ascending: its most confident ones (confidence[i] of node i, never above
    its parent's, so ties broken by index keep every parent), as many as best_size favours."""
    order = sorted(range(len(confidence)), key=lambda i: (-confidence[i], i))
    return sorted(order[:best_size([confidence[i] for i in order], curve, draft_seconds)])


def fit_costs(target, fit) -> CostCurve | None:
    """A drafter's `fit` option: the target's cost curve, or None (fixed sizes). Measured here, when the drafter
    is built, so that no generation's timing includes it."""
    if not isinstance(fit, bool):
        raise ConfigError(f"option fit={fit!r} is invalid; accepted: true or false")
    return cost_curve(target.runtime) if fit else None


def cost_curve(rt, *, context: int = 128, repeats: int = 3) -> CostCurve:
    """The runtime's verification cost curve (measured on first use, then memoised for the runtime's life)."""
    curve = _CURVES.get(rt)
    if curve is None:
        curve = _CURVES[rt] = _measure(rt, context, repeats)
    return curve


def _measure(rt, context: int, repeats: int) -> CostCurve:
    context = max(1, min(context, rt.max_context - SIZES[-1] - 1))
    step = timing.ForwardStep(rt, torch.zeros(1, context, dtype=torch.long), SIZES[-1])
    times = timing.time_forwards({"verify": step}, list(SIZES), repeats=repeats)
    best = [times["verify", k].min for k in SIZES]
    monotone = [max(best[:i + 1]) for i in range(len(best))]      # more tokens never cost less
    return CostCurve(SIZES, tuple(monotone))
