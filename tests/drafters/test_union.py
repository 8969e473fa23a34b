"""Unions of drafters (eagle+pld): the tree merge, what each member learns of its own draft, options by member,
and the two end-to-end guarantees (greedy identical to vanilla, sampling keeps the target distribution), also
when the first member drew its nodes from distributions and when a later one did."""

import pytest
import torch

from specdec.config import SamplingParams
from specdec.drafters import is_method, make_drafter
from specdec.drafters.pld import PromptLookupDrafter
from specdec.drafters.cost import CostCurve
from specdec.drafters.union import UnionDrafter, fit_merged, member_result, merge_drafts
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.types import Draft, VerifyResult
from tests.distribution import two_token_tv
from tests.tiny import tiny_target
from tests.trained_helpers import distilled_drafter, eagle_drafter, medusa_drafter


def _draft(tokens, parents, probs=None, confidence=None):
    return Draft(torch.tensor(tokens, dtype=torch.long), torch.tensor(parents, dtype=torch.long), probs,
                 confidence=confidence)


def test_merge_shares_common_nodes_and_appends_the_rest_in_member_order():
    a = _draft([5, 6, 7], [-1, 0, -1])              # 5 -> 6, and 7
    b = _draft([5, 8, 9], [-1, 0, 1])               # 5 -> 8 -> 9: shares 5
    merged, maps = merge_drafts([a, b], max_nodes=10)
    assert merged.tokens.tolist() == [5, 6, 7, 8, 9]
    assert merged.parents.tolist() == [-1, 0, -1, 0, 3]
    assert maps == [[0, 1, 2], [0, 3, 4]]
    assert merged.draft_probs is None


def test_merge_drops_what_does_not_fit_with_its_descendants():
    a = _draft([5, 6], [-1, 0])
    b = _draft([7, 8, 9, 6], [-1, 0, 1, -1])
    merged, maps = merge_drafts([a, b], max_nodes=3)
    assert merged.tokens.tolist() == [5, 6, 7] and merged.parents.tolist() == [-1, 0, -1]
    assert maps[1] == [2, None, None, None]        # 8 did not fit, so neither does its child 9
    assert merge_drafts([a, b], max_nodes=0)[0].size == 0


def test_merge_keeps_the_first_members_distributions_and_gives_the_rest_one_hot_rows():
    probs = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.1, 0.1, 0.1, 0.7]])
    a = _draft([0, 3], [-1, 0], probs)
    b = _draft([1, 0, 2], [-1, -1, 1], torch.full((3, 4), 0.25))   # a later member's own rows are not used
    merged, _ = merge_drafts([a, b], max_nodes=10)
    assert merged.tokens.tolist() == [0, 3, 1, 2] and merged.parents.tolist() == [-1, 0, -1, 0]
    assert torch.equal(merged.draft_probs[:2], probs)
    assert torch.equal(merged.draft_probs[2:], torch.eye(4)[[1, 2]])
    deterministic_first, _ = merge_drafts([_draft([1, 0, 2], [-1, -1, 1]), a], max_nodes=10)
    assert deterministic_first.draft_probs is None  # a deterministic first member: every node one-hot


def test_merged_confidence_is_the_best_members_cut_to_the_parents():
    a = _draft([5, 6], [-1, 0], confidence=torch.tensor([0.4, 0.3]))
    b = _draft([5, 6, 7], [-1, 0, -1], confidence=torch.tensor([0.9, 0.8, 0.2]))
    c = _draft([8, 9], [-1, 0], confidence=torch.tensor([0.1, 0.05]))
    merged, _ = merge_drafts([a, b, c], max_nodes=10)
    assert merged.tokens.tolist() == [5, 6, 7, 8, 9]
    assert torch.allclose(merged.confidence, torch.tensor([0.9, 0.8, 0.2, 0.1, 0.05]))
    raised = _draft([8, 9], [-1, 0], confidence=torch.tensor([0.1, 0.7]))     # a child above its parent
    assert merge_drafts([a, raised], 10)[0].confidence[-1].item() == pytest.approx(0.1)
    assert merge_drafts([a, _draft([7], [-1])], 10)[0].confidence is None    # one member has no estimate
    assert merge_drafts([a, _draft([], [])], 10)[0].confidence is not None   # an empty draft needs none


def test_fit_keeps_the_most_confident_nodes_the_cost_curve_pays_for():
    a = _draft([5, 6, 7], [-1, 0, 1], confidence=torch.tensor([0.9, 0.85, 0.1]))
    b = _draft([8, 9], [-1, 0], confidence=torch.tensor([0.3, 0.2]))
    merged, maps = merge_drafts([a, b], max_nodes=10)
    steep = CostCurve((1, 2, 3, 4, 6), (1.0, 1.25, 1.5, 1.75, 2.25))     # each token costs a quarter more
    kept, new_maps = fit_merged(merged, maps, steep, draft_seconds=0.0)
    assert kept.tokens.tolist() == [5, 6] and kept.parents.tolist() == [-1, 0]
    assert new_maps == [[0, 1, None], [None, None]]
    flat = CostCurve((1, 2, 3, 4, 6), (1.0, 1.0, 1.0, 1.0, 1.0))
    assert fit_merged(merged, maps, flat, 0.0)[0].size == 5
    for cost, expected in [(steep, 2), (flat, 5)]:              # the union drafter applies it
        u = UnionDrafter([("a", _Fixed(a)), ("b", _Fixed(b))], cost)
        assert u.propose(_state()).size == expected


def _state():
    from specdec.drafters.base import DecodeState
    return DecodeState([1, 2], SamplingParams(), torch.Generator(), max_depth=10, max_nodes=10)


class _Fixed:
    hidden_layers = ()

    def __init__(self, draft):
        self.draft = draft

    def begin(self, prompt_ids):
        pass

    def propose(self, state):
        return self.draft

    def on_accept(self, result):
        pass


def test_member_result_cuts_the_path_at_the_first_foreign_node():
    a = _draft([5, 6], [-1, 0])
    b = _draft([5, 8, 9], [-1, 0, 1])
    _, maps = merge_drafts([a, b], max_nodes=10)     # merged: 5, 6, 8 (under 5), 9 (under 8)
    result = VerifyResult(tokens=[5, 8, 9, 4], n_accepted=3, accepted_path=[0, 2, 3], next_token=4, bonus=True)
    ra = member_result(result, a, maps[0])
    assert (ra.n_accepted, ra.accepted_path, ra.tokens, ra.next_token, ra.bonus) == (1, [0], [5, 8], 8, False)
    rb = member_result(result, b, maps[1])
    assert (rb.n_accepted, rb.accepted_path, rb.tokens, rb.next_token, rb.bonus) == (3, [0, 1, 2], [5, 8, 9, 4], 4,
                                                                                        True)
    leaf = VerifyResult(tokens=[5, 6, 2], n_accepted=2, accepted_path=[0, 1], next_token=2, bonus=True)
    assert member_result(leaf, b, maps[1]).bonus is False    # b's 5 had a child (8), rejected in favour of 6
    assert member_result(leaf, a, maps[0]).bonus is True


class _Recorder(_Fixed):
    """A fixed-draft member that records what on_accept tells it."""

    def __init__(self, tokens, parents):
        super().__init__(_draft(tokens, parents))
        self.seen = []

    def on_accept(self, result):
        self.seen.append(result)


def test_members_hear_about_their_own_drafts():
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, scale=3.0, seed=3)
    prompt = [1, 2, 3]
    greedy = SpeculativeDecoder(target).generate(prompt, 3).token_ids      # the target's next tokens
    right = _Recorder(greedy[:2], [-1, 0])
    wrong = _Recorder([(greedy[0] + 1) % 12], [-1])
    res = SpeculativeDecoder(target, UnionDrafter([("w", wrong), ("r", right)])).generate(prompt, 3)
    assert res.token_ids == greedy and res.stats.target_forwards == 1
    assert (right.seen[0].n_accepted, right.seen[0].bonus) == (2, True)
    assert (wrong.seen[0].n_accepted, wrong.seen[0].accepted_path, wrong.seen[0].tokens) == (0, [], greedy[:1])


BUILDERS = {
    "eagle+pld": lambda t, s: [("eagle", eagle_drafter(t, s, depth=3, topk=2, nodes=6)),
                               ("pld", PromptLookupDrafter(min_ngram=1, branches=2))],
    "pld+eagle": lambda t, s: [("pld", PromptLookupDrafter(min_ngram=1, num_draft=3)),
                               ("eagle", eagle_drafter(t, s, depth=4, topk=3, nodes=10))],
    "distilled+pld": lambda t, s: [("distilled", distilled_drafter(t, s, num_draft=3)),
                                   ("pld", PromptLookupDrafter(min_ngram=1, branches=2))],
    "pld+distilled": lambda t, s: [("pld", PromptLookupDrafter(min_ngram=1)),
                                   ("distilled", distilled_drafter(t, s, num_draft=3))],
    "medusa+pld+eagle (fit)": lambda t, s: [("medusa", medusa_drafter(t, s)),
                                            ("pld", PromptLookupDrafter(min_ngram=1)),
                                            ("eagle", eagle_drafter(t, s, depth=3, topk=2, nodes=6))],
}
FIT = CostCurve((1, 2, 4, 8, 16), (1.0, 1.1, 1.3, 1.7, 2.5))     # cuts some nodes, keeps others


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_greedy_equals_vanilla(name):
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, scale=3.0, seed=3)
    vanilla = SpeculativeDecoder(target)
    g = torch.Generator().manual_seed(1)
    accepted = shared = 0
    for i in range(6):
        prompt = torch.randint(0, 12, (int(torch.randint(4, 12, (1,), generator=g)),), generator=g).tolist() * 2
        drafter = UnionDrafter(BUILDERS[name](target, i), FIT if "fit" in name else None)
        spec = SpeculativeDecoder(target, drafter).generate(prompt, 25)
        assert spec.token_ids == vanilla.generate(prompt, 25).token_ids, (name, prompt)
        accepted += spec.stats.emitted_tokens - spec.stats.target_forwards
        shared += sum(m is not None for m in drafter._maps[1])
    assert accepted > 0 and shared > 0    # drafts were accepted, and the second member's nodes really got in


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_sampling_keeps_the_target_distribution(name):
    target, _ = tiny_target(vocab=6, layers=1, hidden=16, heads=2, kv_heads=1, scale=2.0, seed=7)
    sampling = SamplingParams(temperature=0.9, top_p=0.95)
    prompt = [0, 3, 2, 0, 3, 2, 5, 0, 3]   # repeats, so lookup proposes beside the other member
    tv, bound = two_token_tv(target, prompt, sampling,
                             lambda i: UnionDrafter(BUILDERS[name](target, i % 3), FIT if "fit" in name else None), 2000)
    assert tv < bound, (tv, bound)


def test_made_by_name_with_options_by_member():
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, scale=3.0, seed=3)
    assert is_method("pld+lookahead") and is_method("vanilla+pld") and not is_method("pld+nope")
    u = make_drafter("pld+vanilla", target, {"pld.num_draft": 3, "pld.adaptive": False})
    assert isinstance(u, UnionDrafter) and u.members[0][1].schedule.length == 3
    for method, options, words in [("pld+vanilla", {"num_draft": 3}, "names no member"),
                                   ("pld+vanilla", {"eagle.depth": 3}, "names no member"),
                                   ("pld+pld", {}, "distinct"),
                                   ("pld+nope", {}, "unknown"),
                                   ("pld+vanilla", {"pld.bogus": 1}, "bad option")]:
        with pytest.raises(ConfigError, match=words):
            make_drafter(method, target, options)


def test_a_member_with_scratch_nodes_is_refused_with_its_name():
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, scale=3.0, seed=3)
    drafter = make_drafter("pld+lookahead", target)
    with pytest.raises(ConfigError, match="'lookahead' proposes scratch nodes"):
        SpeculativeDecoder(target, drafter).generate([1, 2, 3, 4, 1, 2, 3, 4, 1, 2], 20)
