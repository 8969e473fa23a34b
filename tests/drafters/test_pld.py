"""Prompt lookup: the n-gram index against brute force, trie drafts, the length schedule, and the two
end-to-end guarantees (greedy identical to vanilla, sampling keeps the target distribution)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specdec.config import SamplingParams
from specdec.drafters.cost import CostCurve
from specdec.drafters.pld import NgramIndex, PromptLookupDrafter, trie_draft
from specdec.drafters.schedule import DraftLength
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.types import AcceptanceCounter, Draft, VerifyResult
from tests.distribution import two_token_tv
from tests.tiny import tiny_target


def brute_force_lookup(tokens, max_ngram, min_ngram, max_matches):
    for n in range(min(max_ngram, len(tokens)), min_ngram - 1, -1):
        suffix = tokens[-n:]
        starts = [j + n for j in range(len(tokens) - n) if tokens[j:j + n] == suffix]
        if starts:
            return n, starts[::-1][:max_matches]
    return 0, []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.integers(1, 4), st.integers(1, 30))
def test_incremental_index_equals_brute_force(tokens, max_ngram, split):
    index = NgramIndex(max_ngram, keep=100)
    index.extend(tokens[:split])          # grown in two pieces, as during decoding
    index.extend(tokens[split:])
    assert index.lookup(3) == brute_force_lookup(tokens, max_ngram, 1, 3)


def test_trie_merges_common_prefixes_and_respects_the_budget():
    d = trie_draft([[5, 6, 7], [5, 6, 8], [9]], max_nodes=10)
    assert d.tokens.tolist() == [5, 6, 7, 8, 9] and d.parents.tolist() == [-1, 0, 1, 1, -1]
    assert trie_draft([[5, 6, 7], [9, 1]], max_nodes=4).size == 4


def test_proposes_the_continuation_of_the_latest_match():
    from specdec.drafters.base import DecodeState
    drafter = PromptLookupDrafter(max_ngram=2, min_ngram=1, num_draft=3, adaptive=False)
    prompt = [1, 2, 3, 4, 9, 1, 2, 7, 8, 5, 1, 2]
    drafter.begin(prompt)
    draft = drafter.propose(DecodeState(prompt, SamplingParams(), torch.Generator(), max_depth=10, max_nodes=10))
    assert draft.tokens.tolist() == [7, 8, 5] and draft.is_chain     # "1 2" last seen before "7 8 5"


def test_draft_length_schedule():
    s = DraftLength(4, adaptive=True, maximum=8)
    s.update(4, 4)
    assert s.length == 6
    s.update(1, 6)
    assert s.length == 5
    s.update(0, 0)                        # nothing proposed: unchanged
    assert s.length == 5
    s.reset()                             # a new request
    assert s.length == 4
    fixed = DraftLength(4, adaptive=False)
    fixed.update(4, 4)
    assert fixed.length == 4
    with pytest.raises(ConfigError):
        DraftLength(0)


def _step(counter, proposed, accepted):
    """Count a chain of `proposed` tokens of which the first `accepted` were kept."""
    counter.update(Draft.chain(torch.arange(proposed)), VerifyResult(list(range(accepted + 1)), accepted,
                                                                     list(range(accepted)), 0, accepted == proposed))


def test_acceptance_confidence_never_rises_with_depth():
    a = AcceptanceCounter()
    assert a.confidence(2) == [0.5, 0.5]                  # no evidence yet: the prior's mean
    _step(a, 3, 3)                                        # all three accepted
    _step(a, 3, 1)                                        # the first only
    _step(a, 0, 0)                                        # nothing proposed: no evidence
    assert a.confidence(4) == [3 / 4, 2 / 4, 2 / 4, 0.5]  # depth 3: 1 of 2 -> 2/4; depth 4 unseen, cut to 2/4
    _step(a, 2, 2)
    assert a.confidence(3) == [4 / 5, 3 / 5, 2 / 4]
    a.reset()
    assert a.confidence(1) == [0.5]


def test_drafts_carry_this_requests_acceptance_by_depth_as_confidence():
    from specdec.drafters.base import DecodeState
    from specdec.types import VerifyResult
    drafter = PromptLookupDrafter(max_ngram=2, min_ngram=1, num_draft=3, adaptive=False)
    prompt = [1, 2, 3, 4, 9, 1, 2, 7, 8, 5, 1, 2]
    drafter.begin(prompt)
    state = DecodeState(prompt, SamplingParams(), torch.Generator(), max_depth=10, max_nodes=10)
    assert drafter.propose(state).confidence.tolist() == [0.5, 0.5, 0.5]
    drafter.on_accept(VerifyResult([7, 8], 1, [0], 8, False))
    assert drafter.propose(state).confidence.tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3])


def test_a_request_drafts_as_it_would_on_a_fresh_drafter():
    """The adaptive length restarts with each request: results do not depend on what ran before."""
    target, _ = tiny_target(vocab=8, layers=2, hidden=32, scale=4.0, seed=2)
    g = torch.Generator().manual_seed(3)
    used = PromptLookupDrafter(min_ngram=1)
    SpeculativeDecoder(target, used).generate(torch.randint(0, 8, (30,), generator=g).tolist(), 40)
    assert used.schedule.length != 8                     # the first request moved it from its start
    p = [5, 6, 7, 4]
    prompt = p + SpeculativeDecoder(target).generate(p, 24).token_ids + p    # the answer to p is in the prompt
    again = SpeculativeDecoder(target, used).generate(prompt, 24).stats
    fresh = SpeculativeDecoder(target, PromptLookupDrafter(min_ngram=1)).generate(prompt, 24).stats
    assert (again.target_forwards, again.draft_tokens) == (fresh.target_forwards, fresh.draft_tokens)


STEEP = CostCurve((1, 2, 4, 8, 16), (1.0, 1.3, 1.9, 3.1, 5.5))   # a token more costs 30%: cuts drafts short


@pytest.mark.parametrize("options", [{}, {"min_ngram": 1, "branches": 3}, {"min_ngram": 1, "num_draft": 2, "adaptive": False},
                                     {"min_ngram": 1, "branches": 2, "costs": STEEP}])
def test_greedy_equals_vanilla(options):
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, scale=3.0, seed=11)
    vanilla = SpeculativeDecoder(target)
    g = torch.Generator().manual_seed(0)
    accepted = 0
    for _ in range(8):
        prompt = torch.randint(0, 12, (20,), generator=g).tolist() * 2     # repeated, so long n-grams match
        spec = SpeculativeDecoder(target, PromptLookupDrafter(**options)).generate(prompt, 30)
        assert spec.token_ids == vanilla.generate(prompt, 30).token_ids
        accepted += spec.stats.emitted_tokens - spec.stats.target_forwards
    assert accepted > 0                   # the drafts were really used, not all rejected


@pytest.mark.parametrize("sampling,options", [(SamplingParams(temperature=1.0), {}),
                                              (SamplingParams(temperature=0.8, top_p=0.9), {}),
                                              (SamplingParams(temperature=0.8, top_p=0.9), {"costs": STEEP})],
                         ids=["t1", "t0.8-p0.9", "fit"])
def test_sampling_keeps_the_target_distribution(sampling, options):
    target, _ = tiny_target(vocab=6, layers=1, hidden=16, heads=2, kv_heads=1, scale=2.0, seed=7)
    prompt = [0, 3, 2, 0, 3, 2, 5, 0, 3]   # repeats, so lookup proposes trees of real continuations
    drafter = lambda i: PromptLookupDrafter(min_ngram=1, branches=2, **options)  # noqa: E731
    tv, bound = two_token_tv(target, prompt, sampling, drafter, 2500)
    assert tv < bound, (tv, bound)


def test_fit_cuts_drafts_to_what_the_cost_curve_pays_for():
    """Under a steep curve, the prior (0.5 at every depth) pays for 3 tokens (2.5 / 1.9 beats 2.0 / 1.6 and
    1.5 / 1.3); once this request's acceptance is 2/3, 1/3, 1/3 by depth, only the first (1.67 / 1.3)."""
    from specdec.drafters.base import DecodeState
    from specdec.types import VerifyResult
    prompt = [1, 2, 3, 4, 9, 1, 2, 7, 8, 5, 1, 2]
    state = DecodeState(prompt, SamplingParams(), torch.Generator(), max_depth=10, max_nodes=10)
    fitted = PromptLookupDrafter(max_ngram=2, min_ngram=1, num_draft=3, adaptive=False, costs=STEEP)
    fitted.begin(prompt)
    assert fitted.propose(state).tokens.tolist() == [7, 8, 5]
    fitted.on_accept(VerifyResult([7, 8], 1, [0], 8, False))
    assert fitted.propose(state).tokens.tolist() == [7]
    free = CostCurve((1, 2, 4, 8, 16), (1.0, 1.0, 1.0, 1.0, 1.0))
    flat = PromptLookupDrafter(max_ngram=2, min_ngram=1, num_draft=3, adaptive=False, costs=free)
    flat.begin(prompt)
    flat.propose(state)
    flat.on_accept(VerifyResult([7, 8], 1, [0], 8, False))
    assert flat.propose(state).tokens.tolist() == [7, 8, 5]        # free tokens are always worth verifying


def test_the_drafter_counts_acceptance_as_the_engine_does():
    """pld's confidence and the engine's statistics come from one counter, fed the same drafts and results."""
    target, _ = tiny_target(vocab=8, layers=1, hidden=16, heads=2, kv_heads=1, scale=2.0, seed=2)
    drafter = PromptLookupDrafter(min_ngram=1, branches=2)
    res = SpeculativeDecoder(target, drafter).generate([1, 2, 3, 1, 2, 3, 1, 2], 40)
    assert drafter.acceptance == res.stats.acceptance and sum(res.stats.acceptance.proposed) > 0
