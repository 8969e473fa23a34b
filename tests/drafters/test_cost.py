"""Draft sizing by the measured verification cost curve (specdec/drafters/cost.py)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specdec.config import SamplingParams
from specdec.drafters.base import DecodeState
from specdec.drafters.cost import SIZES, CostCurve, best_size, cost_curve
from tests.tiny import tiny_target
from tests.trained_helpers import eagle_drafter


def test_curve_interpolates_between_sizes_and_extrapolates_past_the_last():
    curve = CostCurve((1, 2, 4), (1.0, 1.5, 2.5))
    assert curve(1) == 1.0 and curve(0) == 1.0 and curve(2) == 1.5 and curve(4) == 2.5
    assert curve(3) == 2.0                                   # halfway between 2 and 4
    assert curve(6) == 3.5                                   # the last segment's slope, 0.5 per token


def test_best_size_by_hand():
    curve = CostCurve((1, 2, 3, 4), (1.0, 1.2, 1.5, 2.5))
    # expected tokens / cost for n = 0..3: 1/1, 1.9/1.2, 2.4/1.5, 2.5/2.5 -> n = 2
    assert best_size([0.9, 0.5, 0.1], curve) == 2
    # with 1 s of drafting: 1/2, 1.9/2.2, 2.4/2.5, 2.5/3.5 -> still 2
    assert best_size([0.9, 0.5, 0.1], curve, draft_seconds=1.0) == 2
    assert best_size([0.9, 0.5, 0.1], CostCurve((1, 4), (1.0, 1.0))) == 3      # free verification: all
    assert best_size([0.9, 0.5, 0.1], CostCurve((1, 2), (1.0, 10.0))) == 0     # ruinous: none
    assert best_size([], curve) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), max_size=12), st.lists(st.floats(0, 2), min_size=3, max_size=3),
       st.floats(0, 1), st.floats(0, 2))
def test_a_steeper_curve_never_asks_for_more_nodes(gains, steps, extra, draft):
    """With gains sorted best first in [0, 1] (as drafters pass them), adding a cost per verified token can
    only shrink the chosen draft."""
    gains = sorted(gains, reverse=True)
    seconds = [1.0]
    for s in steps:
        seconds.append(seconds[-1] + s)
    base = CostCurve((1, 2, 4, 8), tuple(seconds))
    steeper = CostCurve(base.sizes, tuple(t + extra * (k - 1) for k, t in zip(base.sizes, base.seconds)))
    assert best_size(gains, steeper, draft) <= best_size(gains, base, draft)


def test_measured_curve_is_memoised_and_never_decreasing():
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, seed=3)
    curve = cost_curve(target.runtime, context=8, repeats=1)
    assert curve is cost_curve(target.runtime)
    assert curve.sizes == SIZES and all(a <= b for a, b in zip(curve.seconds, curve.seconds[1:]))
    assert curve.seconds[0] > 0


def _propose(drafter, target, prompt):
    drafter.begin(prompt)
    out = target.runtime.forward(torch.tensor([prompt[:-1]]), target.runtime.new_cache(32), logits="none",
                                 hidden_layers=(-1,))
    state = DecodeState(prompt, SamplingParams(), torch.Generator(), max_depth=10, max_nodes=10,
                        hidden={-1: out.hidden[-1][0]})
    return drafter.propose(state)


def test_eagle_fit_drafts_everything_when_verification_is_free_and_nothing_when_it_is_ruinous():
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, seed=3)
    free = CostCurve((1, 64), (1e3, 1e3))                  # drafting time is negligible beside 1000 s
    ruinous = CostCurve((1, 2), (1e-3, 1e3))
    assert _propose(eagle_drafter(target, depth=3, topk=3, nodes=7, costs=free), target, [1, 2, 3]).size == 7
    assert _propose(eagle_drafter(target, depth=3, topk=3, nodes=7, costs=ruinous), target,
                    [1, 2, 3]).size == 0
