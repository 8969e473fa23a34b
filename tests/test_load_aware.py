"""Load-aware draft budgets: chosen before drafting, jointly, from a cost surface of the target pass and each
request's own acceptance; speculation shrinks and switches off as the batch grows."""

from __future__ import annotations

import pytest
import torch

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


def with_context(per_row: float, fixed: float, per_key: float, contexts=(256, 1024)) -> CostSurface:
    """A pass costs `fixed` + `per_row` a row + `per_key` a cached key of every request (attention)."""
    grid = lambda c: tuple(tuple(fixed + per_row * b * k + per_key * b * c for k in ROWS) for b in BATCHES)  # noqa
    return CostSurface(BATCHES, ROWS, grid(contexts[0]), contexts[0], "", grid(contexts[1]), contexts[1])


def test_the_surface_interpolates_and_extrapolates():
    s = synthetic(1e-3)
    assert s(1, 1) == pytest.approx(10e-3)
    assert s(4, 16) == pytest.approx(10e-3 + 8e-3)            # 4 x 4 rows: 8 beyond the free ones
    assert s(3, 9) == pytest.approx((s(2, 6) + s(4, 12)) / 2)   # halfway in batch at 3 rows each
    assert s(32, 32 * 4) > s(16, 16 * 4)                       # beyond the grid: extrapolated, still growing


def test_the_surface_interpolates_in_context_and_a_batch_of_long_contexts_drafts_more():
    s = with_context(1e-3, 5e-3, 2e-5)
    assert s(4, 8, 256) == pytest.approx(5e-3 + 8e-3 + 4 * 256 * 2e-5)
    assert s(4, 8, 640) == pytest.approx((s(4, 8, 256) + s(4, 8, 1024)) / 2)
    assert s(4, 8, 2048) == pytest.approx(5e-3 + 8e-3 + 4 * 2048 * 2e-5)        # linear beyond the grid
    assert s(4, 8) == s(4, 8, 256)                                             # no context: the first grid
    gains = [[0.6 ** (d + 1) for d in range(16)] for _ in range(8)]
    short = plan_budgets(s, gains, [0.0] * 8, 16, context=256)
    long = plan_budgets(s, gains, [0.0] * 8, 16, context=4096)
    assert sum(long) > sum(short)      # the same rows are a smaller share of a pass that reads more keys


def test_a_drafter_that_rarely_fills_its_budget_is_allowed_more():
    """Prompt lookup without a match proposes nothing: allowing it nodes costs the rows it fills, not the budget."""
    surface = synthetic(5e-3, free_rows=4)               # the first rows ride free, then each costs half a pass
    gains = [[0.7 ** (d + 1) for d in range(16)]]
    [always] = plan_budgets(surface, gains, [0.0], 16, fills=[[1.0] * 16])
    [rarely] = plan_budgets(surface, gains, [0.0], 16, fills=[[0.2] * 16])
    assert 0 < always < rarely
    assert plan_budgets(surface, gains, [0.0], 16) == [always]      # no fills given: every node a row


def test_fill_rates_count_what_a_drafter_proposed_within_its_budget():
    from specdec.sequence import Sequence
    s = Sequence(Request([1, 2, 3], 4), 0, None)
    assert s.fill_rates(3) == [1.0, 1.0, 1.0]                 # never seen: assumed to fill
    for nodes in (0, 0, 3, 1):
        s.count_fill(4, nodes)
    assert s.fill_rates(5) == [3 / 5, 2 / 5, 2 / 5, 1 / 5, 1.0]


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


def test_a_drafting_calls_own_cost_stops_short_drafts_and_pays_off_over_deep_ones():
    """A drafter costing 8 ms a call plus 0.1 ms a node, on a pass of 10 ms with free rows: spread per node over
    a 16-node draft (0.6 ms) the call looks cheap, so a weak request would draft a node that loses time; charged
    once per call, the weak request drafts nothing and a strong one still drafts deep."""
    surface = synthetic(0.0, free_rows=10_000)
    weak, strong = [[0.3 ** (d + 1) for d in range(16)]], [[0.95 ** (d + 1) for d in range(16)]]
    assert plan_budgets(surface, weak, [0.6e-3], 16) != [0]
    assert plan_budgets(surface, weak, [0.1e-3], 16, call_seconds=[8e-3]) == [0]
    assert plan_budgets(surface, strong, [0.1e-3], 16, call_seconds=[8e-3]) == [16]


def test_draft_cost_is_a_line_through_the_calls():
    from specdec.sequence import Sequence
    s = Sequence(Request([1, 2, 3], 4), 0, None)
    assert s.draft_cost() == (0.0, 0.0)
    for nodes in (1, 4, 8, 2):
        s.count_draft_cost(nodes, 5e-3 + 1e-4 * nodes)
    per_call, per_node = s.draft_cost()
    assert per_call == pytest.approx(5e-3) and per_node == pytest.approx(1e-4)
    same = Sequence(Request([1, 2, 3], 4), 0, None)
    for _ in range(4):
        same.count_draft_cost(4, 2e-3)                      # no spread in sizes: all of it per node
    assert same.draft_cost() == (0.0, pytest.approx(0.5e-3))


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


def _intermittent(pattern: list[int]):
    """A budget policy that allows pattern[i % len] nodes at a request's i-th decoding step (0: no drafting)."""
    steps: dict[str, int] = {}

    def budget(seqs):
        out = []
        for s in seqs:
            i = steps.get(s.request_id, 0)
            steps[s.request_id] = i + 1
            out.append(pattern[i % len(pattern)])
        return out
    return budget


class _Spy(NoiseDrafter):
    """Records what the engine hands over: the hidden rows of every call, and the order of propose / on_accept."""

    hidden_layers = (0, -1)

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.calls, self.rows, self.seen = [], [], []

    def propose(self, state):
        self.calls.append("propose")
        self.rows.append({k: v.clone() for k, v in state.hidden.items()})
        self.seen.append(len(state.tokens))
        return super().propose(state)

    def on_accept(self, result):
        self.calls.append("accept")


def test_steps_without_drafting_keep_every_target_state_for_the_drafters_next_call():
    """A feature-level head (EAGLE) appends the states of the positions committed since its last call; a step
    whose budget is 0 does not call it, so those states must wait, not be overwritten by the next pass's."""
    target, _ = tiny_target(vocab=32, layers=2, hidden=32, scale=3.0, seed=5)
    spies = [_Spy(32, 3, 1, False, seed=i) for i in range(3)]
    engine = Engine(target, max_num_seqs=3, max_num_batched_tokens=8,
                    budget=_intermittent([0, 3, 0, 0, 2, 1]))
    prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [4, 5], [6, 7, 8, 9]]   # the first is prefilled in chunks
    reqs = [Request(p, 20, drafter=spy) for p, spy in zip(prompts, spies)]
    for r in reqs:
        engine.add(r)
    output = {r.request_id: list(r.token_ids) for r in engine.run()}
    for p, spy, req in zip(prompts, spies, reqs):
        assert len(spy.rows) >= 3
        assert spy.calls == ["propose", "accept"] * len(spy.rows)      # a verdict only on a draft it proposed
        for k in (0, -1):
            got = torch.cat([r[k] for r in spy.rows])
            assert [sum(r[k].shape[0] for r in spy.rows[:i + 1]) for i in range(len(spy.rows))] == \
                [n - 1 for n in spy.seen]                               # every committed position, each once
            tokens = spy.seen[-1] - 1
            cache = target.runtime.new_cache(tokens + 1)
            full = target.runtime.forward(torch.tensor([(p + output[req.request_id])[:tokens]]), cache,
                                          logits="none", hidden_layers=(k,)).hidden[k][0]
            torch.testing.assert_close(got, full, atol=1e-4, rtol=1e-4)


def test_eagle_drafting_now_and_then_drafts_what_a_head_that_saw_every_position_drafts():
    from specdec.drafters.base import DecodeState
    from tests.trained_helpers import eagle_drafter
    target, _ = tiny_target(vocab=48, layers=2, hidden=32, scale=3.0, seed=2)
    template = eagle_drafter(target, depth=3, topk=2, nodes=6)
    compared = []

    class Checked:
        hidden_layers = template.hidden_layers

        def __init__(self):
            self.inner = template.fork()

        def begin(self, prompt_ids):
            self.inner.begin(prompt_ids)

        def propose(self, state):
            draft = self.inner.propose(state)
            fresh = template.fork()
            fresh.begin(state.tokens)
            n = len(state.tokens) - 1
            out = target.runtime.forward(torch.tensor([state.tokens[:-1]]), target.runtime.new_cache(n + 1),
                                         logits="none", hidden_layers=self.hidden_layers)
            again = fresh.propose(DecodeState(state.tokens, state.sampling, state.generator, state.max_depth,
                                              state.max_nodes, {k: out.hidden[k][0] for k in self.hidden_layers},
                                              room=state.room))
            compared.append((draft.tokens.tolist(), again.tokens.tolist()))
            return draft

        def on_accept(self, result):
            self.inner.on_accept(result)

    engine = Engine(target, max_num_seqs=2, budget=_intermittent([6, 0, 0, 6, 0, 4]))
    for p in ([1, 2, 3, 4, 5], [7, 8, 9]):
        engine.add(Request(p, 24, drafter=Checked()))
    engine.run()
    assert len(compared) >= 6 and all(len(a) for a, _ in compared)
    assert all(a == b for a, b in compared)


def test_the_surface_is_measured_once_and_kept_on_disk(monkeypatch, tmp_path):
    monkeypatch.setenv("SPECDEC_CACHE", str(tmp_path))
    target, _ = tiny_target(vocab=32, layers=1, hidden=32, seed=1)
    small = {"batches": (1, 2), "rows": (1, 3), "context": 16, "long_context": 40, "repeats": 1}
    first, cached = load_or_measure(target, **small)
    assert not cached and all(t > 0 for row in first.seconds + first.long_seconds for t in row)
    assert (first.context, first.long_context) == (16, 40)
    again, cached = load_or_measure(target, **small)
    assert cached and again == first
    assert measure_surface(target, **small).key == first.key
