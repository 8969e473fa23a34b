"""Load-aware draft budgets: chosen before drafting, jointly, from a cost surface of the target pass and each
request's own acceptance; speculation shrinks and switches off as the batch grows."""

from __future__ import annotations

import pytest

from specdec.config import SamplingParams
from specdec.engine import Engine, Request, SpeculativeDecoder
from specdec.load_aware import CostSurface, LoadAwareBudget, load_or_measure, measure_surface, plan_budgets
from tests.test_drafters import NoiseDrafter
from tests.tiny import tiny_target

BATCHES, ROWS = (1, 2, 4, 8, 16), (1, 2, 4, 8, 16)


def synthetic(per_row: float, fixed: float = 10e-3, free_rows: int = 8) -> CostSurface:
    """A pass costs `fixed` plus `per_row` for every row beyond `free_rows` in the whole pass: memory-bound
    until the batch fills the machine, compute-bound after."""
    seconds = tuple(tuple(fixed + per_row * max(0, b * k - free_rows) for k in ROWS) for b in BATCHES)
    return CostSurface(BATCHES, ROWS, seconds, context=256)


def test_the_surface_interpolates_and_extrapolates():
    s = synthetic(1e-3)
    assert s(1, 1) == pytest.approx(10e-3)
    assert s(4, 16) == pytest.approx(10e-3 + 8e-3)            # 4 x 4 rows: 8 beyond the free ones
    assert s(3, 9) == pytest.approx((s(2, 6) + s(4, 12)) / 2)   # halfway in batch at 3 rows each
    assert s(32, 32 * 4) > s(16, 16 * 4)                       # beyond the grid: extrapolated, still growing


def test_a_lone_request_drafts_deep_when_rows_are_free_and_not_at_all_when_they_cost_a_token():
    confident = [[0.9 ** (d + 1) for d in range(16)]]
    assert plan_budgets(synthetic(0.0, free_rows=10_000), confident, [0.0], 16) == [16]
    assert plan_budgets(synthetic(20e-3, fixed=0.0, free_rows=0), confident, [0.0], 16) == [0]


def test_budgets_shrink_as_the_batch_grows_and_switch_off_when_drafting_no_longer_pays():
    surface = synthetic(1.5e-3)
    totals = []
    for n in (1, 2, 4, 8, 16):
        gains = [[0.8 ** (d + 1) for d in range(16)] for _ in range(n)]
        budgets = plan_budgets(surface, gains, [0.0] * n, 16)
        totals.append(sum(budgets) / n)
    assert totals == sorted(totals, reverse=True) and totals[0] > totals[-1]
    assert totals[0] >= 4 and totals[-1] == 0


def test_the_more_promising_request_gets_the_nodes_and_drafting_cost_counts():
    surface = synthetic(1e-3, free_rows=2)
    gains = [[0.9 ** (d + 1) for d in range(16)], [0.2 ** (d + 1) for d in range(16)]]
    good, poor = plan_budgets(surface, gains, [0.0, 0.0], 16)
    assert good > poor
    costly, _ = plan_budgets(surface, gains, [5e-3, 0.0], 16)
    assert costly < good


def test_budget_policy_in_the_engine_keeps_greedy_output_and_reports_its_choice():
    target, _ = tiny_target(vocab=32, layers=2, hidden=32, scale=3.0, seed=5)
    budget = LoadAwareBudget(synthetic(0.0, free_rows=10_000), max_nodes=3)
    engine = Engine(target, max_num_seqs=4, budget=budget)
    prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [3, 3]]
    reqs = [Request(p, 12, drafter=NoiseDrafter(32, 6, 1, False, seed=i)) for i, p in enumerate(prompts)]
    for r in reqs:
        engine.add(r)
    by_id = {r.request_id: r for r in engine.run()}
    assert [by_id[r.request_id].token_ids for r in reqs] == [SpeculativeDecoder(target).generate(p, 12).token_ids
                                                            for p in prompts]
    assert all(by_id[r.request_id].stats.acceptance.proposed[:1] for r in reqs)     # drafts were proposed
    assert max(len(by_id[r.request_id].stats.acceptance.proposed) for r in reqs) <= 3  # within the budget


def test_a_zero_budget_switches_drafting_off_without_calling_the_drafter():
    target, _ = tiny_target(vocab=32, layers=2, hidden=32, scale=3.0, seed=5)

    class Counting(NoiseDrafter):
        calls = 0

        def propose(self, state):
            Counting.calls += 1
            return super().propose(state)

    engine = Engine(target, budget=lambda seqs: [0] * len(seqs))
    engine.add(Request([1, 2, 3], 8, SamplingParams(), drafter=Counting(32, 4, 1, False)))
    engine.run()
    assert Counting.calls == 0


def test_the_surface_is_measured_once_and_kept_on_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("SPECDEC_CACHE", str(tmp_path))
    target, _ = tiny_target(vocab=32, layers=1, hidden=32, seed=1)
    small = {"batches": (1, 2), "rows": (1, 3), "context": 16, "repeats": 1}
    first, cached = load_or_measure(target, **small)
    assert not cached and all(t > 0 for row in first.seconds for t in row)
    again, cached = load_or_measure(target, **small)
    assert cached and again == first
    assert measure_surface(target, **small).key == first.key
