"""verify_draft: routing by sampling and rule, the rule registry, user errors."""

import pytest
import torch

from specdec.config import SamplingParams
from specdec.errors import ConfigError
from specdec.types import Draft
from specdec.verify import (LOSSY_RULES, VERIFY_RULES, logits_to_probs, target_choices, verify_chain_sampling_batched,
                            verify_draft, verify_greedy, verify_seeded, verify_tree_sampling, verify_typical)

SAMPLING = SamplingParams(temperature=0.8, top_k=5)
g = lambda: torch.Generator().manual_seed(5)   # a fresh generator with the same seed for each side


def make_draft(tree: bool, with_probs: bool, vocab: int = 7) -> tuple[Draft, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    parents = torch.tensor([-1, -1, 0, 2] if tree else [-1, 0, 1, 2])
    probs = logits_to_probs(torch.randn(4, vocab, generator=gen), SAMPLING) if with_probs else None
    draft = Draft(tokens=torch.tensor([1, 2, 3, 4]), parents=parents, draft_probs=probs)
    return draft, torch.randn(5, vocab, generator=gen)


def fields(result):
    return result.tokens, result.n_accepted, result.accepted_path, result.next_token, result.bonus


@pytest.mark.parametrize("tree", [False, True])
@pytest.mark.parametrize("rule", ["exact", "rejection", "typical"])
def test_greedy_sampling_uses_greedy_verification(tree, rule):
    draft, logits = make_draft(tree, with_probs=False)
    assert fields(verify_draft(draft, logits, SamplingParams(), g(), rule)) == fields(verify_greedy(draft, logits))


@pytest.mark.parametrize("tree", [False, True])
def test_greedy_with_choices_read_by_the_caller_equals_greedy_on_the_logits(tree):
    draft, logits = make_draft(tree, with_probs=False)
    best = logits.argmax(-1).tolist()
    assert fields(verify_draft(draft, logits, SamplingParams(), best=best)) == fields(verify_greedy(draft, logits))
    with pytest.raises(ValueError, match="best has 4 choices for 5 target rows"):
        verify_draft(draft, logits, SamplingParams(), best=best[:4])


@pytest.mark.parametrize("tree", [False, True])
@pytest.mark.parametrize("seed", [None, 0, 3, 2**40 + 7])
def test_exact_rule_choices_computed_apart_give_the_same_verdict(tree, seed):
    """What the engine does for the seed-stable rule (choices on the logits' device, read with the step's others,
    then the walk) is verify_draft's own verdict, including the seed drawn for a request without one."""
    draft, logits = make_draft(tree, with_probs=True)
    sampling = SamplingParams(temperature=0.8, top_k=5, seed=seed)
    for position in (1, 17):
        choices = target_choices(draft, logits, sampling, g(), "exact", position=position)
        apart = verify_draft(draft, logits, sampling, rule="exact", best=choices.tolist())
        assert fields(apart) == fields(verify_draft(draft, logits, sampling, g(), "exact", position=position))


@pytest.mark.parametrize("rule", ["rejection", "typical"])
def test_rules_that_need_the_distributions_have_no_choices(rule):
    draft, logits = make_draft(tree=True, with_probs=True)
    assert target_choices(draft, logits, SAMPLING, g(), rule) is None
    with pytest.raises(ValueError, match=f"not rule '{rule}'"):
        verify_draft(draft, logits, SAMPLING, g(), rule, best=[0] * 5)


@pytest.mark.parametrize("with_probs", [False, True])
def test_rejection_chain_uses_batched_chain_path(with_probs):
    draft, logits = make_draft(tree=False, with_probs=with_probs)
    for seed in range(30):
        result = verify_draft(draft, logits, SAMPLING, torch.Generator().manual_seed(seed), "rejection")
        probs = None if draft.draft_probs is None else draft.draft_probs.unsqueeze(0)
        n, nxt = verify_chain_sampling_batched(draft.tokens.unsqueeze(0), probs,
                                               logits_to_probs(logits, SAMPLING).unsqueeze(0),
                                               torch.Generator().manual_seed(seed))
        assert (result.n_accepted, result.next_token, result.bonus) == (int(n[0]), int(nxt[0]), int(n[0]) == 4)
        assert result.tokens == draft.tokens[: result.n_accepted].tolist() + [result.next_token]


@pytest.mark.parametrize("with_probs", [False, True])
def test_rejection_tree_uses_tree_sampling(with_probs):
    draft, logits = make_draft(tree=True, with_probs=with_probs)
    expected = verify_tree_sampling(draft, logits_to_probs(logits, SAMPLING), g())
    assert fields(verify_draft(draft, logits, SAMPLING, g(), "rejection")) == fields(expected)


@pytest.mark.parametrize("tree", [False, True])
def test_exact_is_the_seeded_walk_at_the_given_position(tree):
    draft, logits = make_draft(tree=tree, with_probs=True)
    seeded = SamplingParams(temperature=0.8, top_k=5, seed=11)
    expected = verify_seeded(draft, logits_to_probs(logits, seeded), 11, 40)
    assert fields(verify_draft(draft, logits, seeded, g(), "exact", position=40)) == fields(expected)
    assert fields(verify_draft(draft, logits, seeded, None, position=40)) == fields(expected)   # no generator needed


def test_typical_rule():
    draft, logits = make_draft(tree=True, with_probs=True)
    expected = verify_typical(draft, logits_to_probs(logits, SAMPLING), g())
    assert fields(verify_draft(draft, logits, SAMPLING, g(), "typical")) == fields(expected)


def test_registry():
    assert set(VERIFY_RULES) == {"exact", "rejection", "typical"}
    assert LOSSY_RULES == {"typical"} and LOSSY_RULES <= set(VERIFY_RULES)


@pytest.mark.parametrize("sampling", [SamplingParams(), SAMPLING])
def test_unknown_rule_is_a_config_error(sampling):
    draft, logits = make_draft(tree=False, with_probs=False)
    with pytest.raises(ConfigError, match=r"'medusa'.*accepted: exact, rejection, typical"):
        verify_draft(draft, logits, sampling, g(), rule="medusa")


@pytest.mark.parametrize("sampling", [SamplingParams(), SAMPLING])
def test_shape_mismatch_is_a_value_error(sampling):
    draft, logits = make_draft(tree=True, with_probs=True)
    with pytest.raises(ValueError, match=r"target_logits must have shape \[n\+1, vocab\] = \[5, vocab\]"):
        verify_draft(draft, logits[:4], sampling, g())
    with pytest.raises(ValueError, match="draft_probs must have shape"):
        verify_draft(draft, torch.randn(5, 9), sampling, g())
    with pytest.raises(ValueError, match="draft.tokens and draft.parents"):
        verify_draft(Draft(tokens=torch.tensor([1, 2]), parents=torch.tensor([-1])), logits[:3], sampling, g())
