"""Replaying greedy answers: the replay of a deterministic drafter is the engine's run, and the lookup oracle
never needs more target passes than any prompt lookup."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specdec.bench.harness import conversation
from specdec.bench.questions import Question
from specdec.bench.replay import accepted_path, lookup_oracle, replay
from specdec.drafters.cost import CostCurve
from specdec.drafters.pld import PromptLookupDrafter
from specdec.engine import SpeculativeDecoder
from specdec.types import Draft
from tests.tiny import tiny_target

CURVE = CostCurve((1, 2, 4, 8, 16), (1.0, 1.25, 1.4, 1.86, 2.2))


def test_accepted_path_walks_the_tree_along_the_answer():
    d = Draft(torch.tensor([5, 6, 7, 8, 9]), torch.tensor([-1, 0, 1, 1, -1]))
    assert accepted_path(d, [5, 6, 8, 1]) == [0, 1, 3]
    assert accepted_path(d, [9, 6]) == [4]
    assert accepted_path(d, [1]) == [] and accepted_path(d, []) == []


@pytest.mark.parametrize("options", [{"min_ngram": 1}, {"min_ngram": 1, "branches": 3, "num_draft": 4},
                                     {"min_ngram": 2, "adaptive": False, "num_draft": 3}])
def test_replaying_pld_over_the_vanilla_answer_is_the_engine_run(options):
    target, _ = tiny_target(vocab=8, layers=2, hidden=32, scale=4.0, seed=2)
    g = torch.Generator().manual_seed(1)
    drafted = 0
    for _ in range(4):
        prompt = torch.randint(0, 8, (20,), generator=g).tolist()
        answer = SpeculativeDecoder(target).generate(prompt, 40).token_ids
        spec = SpeculativeDecoder(target, PromptLookupDrafter(**options)).generate(prompt, 40)
        assert spec.finish_reason == "length"             # no end-of-sequence token to append
        got = replay(lambda: PromptLookupDrafter(**options), prompt, answer, CURVE, 40)
        assert (got.tokens, got.steps) == (spec.stats.emitted_tokens, spec.stats.target_forwards)
        drafted += spec.stats.draft_tokens
    assert drafted > 0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=30), st.lists(st.integers(0, 3), min_size=1, max_size=40),
       st.integers(1, 3), st.integers(1, 3), st.integers(1, 6), st.booleans())
def test_the_oracle_needs_no_more_passes_than_any_prompt_lookup(prompt, answer, n, branches, num_draft, adaptive):
    pld = replay(lambda: PromptLookupDrafter(max_ngram=3, min_ngram=n, branches=branches, num_draft=num_draft,
                                             adaptive=adaptive), prompt, answer, CURVE)
    oracle = lookup_oracle(prompt, answer, CURVE, min_ngram=n)
    assert oracle.tokens == pld.tokens == len(answer)
    assert oracle.steps <= pld.steps
    assert lookup_oracle(prompt, answer, CURVE, min_ngram=1).steps <= oracle.steps


def test_the_oracle_prices_its_steps_with_the_curve():
    # after the root 3, "4 1 2 3" followed an earlier 3: one pass verifies it and the target adds 9
    rep = lookup_oracle([1, 2, 3, 4, 1, 2, 3], [4, 1, 2, 3, 9], CURVE)
    assert (rep.steps, rep.tokens, rep.cost) == (1, 5, pytest.approx(CURVE(5)))
    assert rep.speedup(CURVE) == pytest.approx(5 / CURVE(5))
    nothing = lookup_oracle([1, 2], [7, 8], CURVE)                # no earlier 2, then no earlier 7: plain steps
    assert (nothing.steps, nothing.cost, nothing.speedup(CURVE)) == (2, 2.0, 1.0)


def test_a_later_turn_sees_the_conversation_with_the_earlier_answers():
    q = Question(1, "multi_turn", "writing", ("first", "second"))
    assert conversation(q, 1, []) == "first"
    assert conversation(q, 2, ["answer"]) == [{"role": "user", "content": "first"},
                                              {"role": "assistant", "content": "answer"},
                                              {"role": "user", "content": "second"}]
