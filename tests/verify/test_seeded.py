"""Seeded sampling (the "exact" rule): the hash, the sample's law, the reference, and stability: the tokens of a
seeded request depend on its seed, positions and the target's distributions only, never on the draft."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specdec.config import SamplingParams
from specdec.types import Draft
from specdec.verify import logits_to_probs, sample_seeded, top_seeded, verify_seeded
from specdec.verify import seeded as seeded_module
from specdec.verify.reference import ref_hash32, ref_seeded_sample, ref_uniform, ref_verify_seeded
from specdec.verify.seeded import EPSILON, hash32, position_keys, uniforms

from .helpers import markov_model, random_trees, tv_bound, tv_distance


def test_hash_is_a_bijection_and_matches_the_python_reference():
    x = torch.arange(0, 1 << 20)
    h = hash32(x)
    assert h.unique().numel() == x.numel() and int(h.min()) >= 0 and int(h.max()) < 2**32
    for v in (0, 1, 12345, 2**31, 2**32 - 1):
        assert int(hash32(torch.tensor(v))) == ref_hash32(v)


@pytest.mark.parametrize("seed", [0, 7, 2**40 + 3, 2**64 - 1])
def test_uniforms_match_the_reference_and_lie_strictly_inside_0_1(seed):
    positions, tokens = torch.tensor([0, 5, 5, 1000]), torch.tensor([0, 0, 1, 49151])
    u = uniforms(position_keys(seed, positions), tokens)
    assert [float(v) for v in u] == [ref_uniform(seed, int(p), int(t)) for p, t in zip(positions, tokens)]
    many = uniforms(position_keys(seed, torch.arange(64)).unsqueeze(1), torch.arange(4096))     # [64, 4096]
    assert 0.0 < float(many.min()) and float(many.max()) < 1.0
    assert abs(float(many.mean()) - 0.5) < 0.003 and abs(float(many.var()) - 1 / 12) < 0.001


def test_seed_out_of_range_is_refused():
    with pytest.raises(ValueError, match="seed -1 is out of range"):
        position_keys(-1, torch.tensor([0]))


def _law_test(probs: torch.Tensor, trials: int = 20_000, seed: int = 3) -> float:
    """TV between probs [vocab] and the seeded samples at `trials` positions (independent noise each)."""
    samples = sample_seeded(probs.expand(trials, -1), seed, torch.arange(trials))
    assert bool((probs[samples] > 0).all()), "a token of probability 0 was sampled"
    return tv_distance(samples, probs)


def test_seeded_samples_follow_the_distribution_over_positions_and_over_seeds():
    probs = logits_to_probs(torch.randn(12, generator=torch.Generator().manual_seed(1)) * 2,
                            SamplingParams(temperature=0.9, top_k=9))
    assert _law_test(probs) < tv_bound(12, 20_000)
    over_seeds = torch.stack([sample_seeded(probs.unsqueeze(0), seed, torch.tensor([5]))[0] for seed in range(3000)])
    assert tv_distance(over_seeds, probs) < tv_bound(12, 3000)


def test_the_group_of_rare_tokens_is_sampled_exactly(monkeypatch):
    """With a large EPSILON most of the mass is in the rare group: its Gumbel and its inverse CDF carry the law."""
    monkeypatch.setattr(seeded_module, "EPSILON", 0.12)
    probs = torch.tensor([0.3, 0.25, 0.1, 0.1, 0.08, 0.07, 0.05, 0.05, 0.0, 0.0])
    assert _law_test(probs) < tv_bound(10, 20_000)


def test_a_wrong_sampler_fails_the_same_test(monkeypatch):
    """The law test has power: dropping the rare group (a plausible bug) is caught."""
    monkeypatch.setattr(seeded_module, "EPSILON", 0.12)
    probs = torch.tensor([0.3, 0.25, 0.1, 0.1, 0.08, 0.07, 0.05, 0.05, 0.0, 0.0])
    real = seeded_module.perturbed_scores
    monkeypatch.setattr(seeded_module, "perturbed_scores",
                        lambda *a: (*real(*a)[:3], torch.full((1,), float("-inf"), dtype=torch.float64)))
    assert _law_test(probs, trials=5_000) > 5 * tv_bound(10, 5_000)


@settings(max_examples=60, deadline=None)
@given(random_trees(max_nodes=6, vocab=4), st.integers(0, 2**62), st.integers(0, 500))
def test_fast_and_reference_make_the_same_decisions(tree, seed, position):
    tokens, parents, target_logits, _ = tree
    probs = logits_to_probs(target_logits, SamplingParams(temperature=1.0))
    result = verify_seeded(Draft(tokens, parents), probs, seed, position)
    path, nxt = ref_verify_seeded(tokens.tolist(), parents.tolist(), probs.tolist(), seed, position, EPSILON)
    assert (result.accepted_path, result.next_token) == (path, nxt)
    for row in range(probs.shape[0]):
        fast = int(sample_seeded(probs[row:row + 1], seed, torch.tensor([position + row]))[0])
        assert fast == ref_seeded_sample(probs[row].tolist(), seed, position + row, EPSILON)


@settings(max_examples=80, deadline=None)
@given(random_trees(max_nodes=7, vocab=3), st.integers(0, 2**62))
def test_speculative_tokens_are_vanilla_seeded_tokens_whatever_the_draft(tree, seed):
    """A Markov target (distribution after token a = row a): vanilla samples position t with the seed's noise;
    any tree proposed after the prompt emits exactly vanilla's next tokens."""
    tokens, parents, _, _ = tree
    model = markov_model(3, SamplingParams(temperature=1.0), seed=seed % 1000)          # [3, 3]
    prompt_last, position = 1, 17                                                       # 17 tokens committed
    vanilla, last = [], prompt_last
    for t in range(position, position + tokens.numel() + 1):
        last = int(sample_seeded(model[last].unsqueeze(0), seed, torch.tensor([t]))[0])
        vanilla.append(last)
    rows = torch.cat([torch.tensor([prompt_last]), tokens])                             # token before each row
    result = verify_seeded(Draft(tokens, parents), model[rows], seed, position)
    assert result.tokens == vanilla[:len(result.tokens)]


def test_a_fixed_candidate_is_accepted_with_the_target_probability():
    """One draft node c: accepted iff the seeded sample is c, over seeds that happens with probability p(c)."""
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]])
    accepted = sum(verify_seeded(Draft.chain(torch.tensor([2])), probs, seed, 9).n_accepted
                   for seed in range(3000))
    assert abs(accepted / 3000 - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 3000)


def test_top_seeded_proposes_distinct_tokens_led_by_the_sample():
    probs = torch.softmax(torch.randn(50, generator=torch.Generator().manual_seed(3)), -1)
    for seed in range(20):
        top = top_seeded(probs, seed, 12, 4)
        assert len(set(top)) == 4
        assert top[0] == int(sample_seeded(probs.unsqueeze(0), seed, torch.tensor([12]))[0])
