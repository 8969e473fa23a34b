"""The one timer (specdec/timing.py): what it measures, that it synchronises CUDA, and that every cost it
serves (fit's cost curve, layer-skip calibration, `specdec cost-curve`, the roofline) is timed by it."""

import pytest
import torch

from specdec import timing
from specdec.bench.cost_curve import verification_cost
from specdec.bench.roofline import measure_bandwidth
from specdec.drafters.cost import SIZES, cost_curve
from specdec.drafters.skip_search import measure_costs
from tests.tiny import tiny_target


def test_timing_keeps_every_repeat_and_reads_min_and_median():
    t = timing.Timing((3.0, 1.0, 2.0))
    assert t.min == 1.0 and t.median == 2.0


def test_calls_are_warmed_up_interleaved_and_repeated():
    order = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    times = timing.time_calls(calls, "cpu", repeats=2, warmup=1)
    assert order == ["a", "b"] * 3                              # one warm-up round, then two timed rounds
    assert [len(times[k].seconds) for k in "ab"] == [2, 2] and all(s >= 0 for s in times["a"].seconds)
    with pytest.raises(ValueError, match="repeats=0"):
        timing.time_calls(calls, "cpu", repeats=0)


def test_forwards_on_a_tiny_model_take_time_and_more_rows_take_no_less_than_a_few_times_fewer():
    target, _ = tiny_target(vocab=64, layers=2, hidden=64, seed=3)
    rt = target.runtime
    step = timing.ForwardStep(rt, torch.zeros(1, 16, dtype=torch.long), 64)
    times = timing.time_forwards({"t": step}, [1, 64], repeats=5, vocab=rt.vocab_size)
    assert times["t", 1].min > 0 and times["t", 64].min > 0
    assert times["t", 64].median > 0.5 * times["t", 1].median   # monotone-ish: noise allowed, no collapse
    assert step.cache.length == 16                              # every timed forward was rolled back


def test_cuda_is_synchronised_around_every_timed_call(monkeypatch):
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    timing.time_calls({"x": lambda: None}, torch.device("cuda"), repeats=3, warmup=1)
    assert len(synced) == 2 * 4                                 # before and after each of 4 rounds
    synced.clear()
    timing.time_calls({"x": lambda: None}, "cpu", repeats=3)
    assert synced == []


def _fixed(seconds_per_row: float):
    """A stand-in for time_calls: each (name, k) call 'takes' k * seconds_per_row, the sum call 1 ms."""
    def fake(calls, device, *, repeats, warmup=1):
        return {key: timing.Timing((key[1] * seconds_per_row if isinstance(key, tuple) else 1e-3,) * repeats)
                for key in calls}
    return fake


def test_every_caller_reads_the_one_timer(monkeypatch):
    monkeypatch.setattr(timing, "time_calls", _fixed(0.5))
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, seed=4)
    rt = target.runtime
    curve = cost_curve(rt, context=8, repeats=1)                    # fit's curve
    assert curve.seconds == tuple(0.5 * k for k in SIZES)
    costs = measure_costs(rt, [1, 2, 3], repeats=1)                 # layer-skip calibration
    assert costs.verify is curve and costs.head == 0.5
    out = verification_cost(rt, [1, 4], context=8, repeats=2)       # specdec cost-curve
    assert out["native_ms"] == [500.0, 2000.0] and out["native_rel"] == [1.0, 4.0]
    assert measure_bandwidth(4 << 10, repeats=2) == (4 << 10) / 1e-3  # the roofline
