"""The decode loop end to end on tiny random models: greedy equals vanilla, sampling keeps the target's
distribution, stops and stats behave."""

import itertools

import pytest
import torch

from specdec.config import SamplingParams
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError, ContextLengthError
from specdec.verify import dispatch
from specdec.types import VerifyResult
from tests.test_drafters import NoiseDrafter, TargetGreedyDrafter
from tests.tiny import tiny_target
from tests.distribution import two_token_tv


@pytest.fixture(scope="module")
def target():
    model, _ = tiny_target(vocab=32, layers=2, hidden=32, scale=3.0, seed=5)
    return model


def _prompts(n, vocab=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


@pytest.mark.parametrize("depth,branches,with_probs", [(1, 1, True), (3, 1, True), (6, 1, False), (3, 3, True),
                                                       (4, 4, False)])
def test_greedy_speculative_equals_vanilla(target, depth, branches, with_probs):
    vanilla = SpeculativeDecoder(target)
    for i, prompt in enumerate(_prompts(8, seed=depth * 10 + branches)):
        spec = SpeculativeDecoder(target, NoiseDrafter(32, depth, branches, with_probs, seed=i))
        expected = vanilla.generate(prompt, 24).token_ids
        assert spec.generate(prompt, 24).token_ids == expected


def test_target_greedy_drafter_is_always_accepted(target):
    res = SpeculativeDecoder(target, TargetGreedyDrafter(target, k=4)).generate([3, 1, 4], 25)
    assert res.token_ids == SpeculativeDecoder(target).generate([3, 1, 4], 25).token_ids
    assert res.stats.target_forwards == 5                  # 5 tokens per forward: 4 accepted + bonus
    assert res.stats.mean_accepted_length == 5.0
    assert res.stats.acceptance_per_depth == [1.0, 1.0, 1.0, 1.0]


def test_vanilla_stats(target):
    res = SpeculativeDecoder(target).generate([1, 2, 3], 10)
    assert res.stats.new_tokens == 10 and res.stats.target_forwards == 10
    assert res.stats.mean_accepted_length == 1.0 and res.finish_reason == "length"


@pytest.fixture(scope="module")
def small_vocab_target():
    model, _ = tiny_target(vocab=6, layers=1, hidden=16, heads=2, kv_heads=1, scale=2.0, seed=7)
    return model


SAMPLING_CASES = [SamplingParams(temperature=1.0), SamplingParams(temperature=0.7, top_k=4),
                  SamplingParams(temperature=1.3, top_p=0.8)]


RULE_CASES = [(s, "exact") for s in SAMPLING_CASES] + [(SAMPLING_CASES[0], "rejection")]


@pytest.mark.parametrize("sampling,rule", RULE_CASES, ids=["t1", "t0.7-topk4", "t1.3-topp0.8", "t1-rejection"])
@pytest.mark.parametrize("branches,with_probs", [(1, True), (3, True), (2, False)], ids=["chain", "tree", "tree-det"])
def test_sampling_keeps_the_target_distribution_of_two_tokens(small_vocab_target, sampling, branches, with_probs,
                                                                rule):
    trials = 2500
    tv, bound = two_token_tv(small_vocab_target, [0, 3, 2], sampling,
                              lambda i: NoiseDrafter(6, 3, branches, with_probs, seed=i), trials, rule)
    assert tv < bound, (tv, bound)


@pytest.mark.parametrize("sampling", SAMPLING_CASES, ids=["t1", "t0.7-topk4", "t1.3-topp0.8"])
def test_a_seeded_request_gives_vanilla_seeded_tokens_with_any_draft(small_vocab_target, sampling):
    """The exact rule's promise: a seeded request's tokens depend on its seed, prompt and the target only: the
    same with no draft, chains, trees, deterministic or sampled drafts of any size."""
    for seed in range(6):
        s = SamplingParams(temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p, seed=seed)
        vanilla = SpeculativeDecoder(small_vocab_target).generate([0, 3, 2], 24, s).token_ids
        for k, branches, with_probs in [(1, 1, True), (6, 1, True), (6, 3, True), (4, 2, False)]:
            drafter = NoiseDrafter(6, k, branches, with_probs, seed=seed + 100 * k)
            assert SpeculativeDecoder(small_vocab_target, drafter).generate([0, 3, 2], 24, s).token_ids == vanilla


def test_a_wrong_verifier_fails_the_same_test(small_vocab_target, monkeypatch):
    """Accept-every-draft-token must be caught by the bound above, or the test could not fail."""
    def accept_all(draft, target_probs, draws):
        path = list(range(draft.size))
        nxt = int(torch.multinomial(target_probs[-1], 1, generator=draws.generator))
        return VerifyResult(draft.tokens.tolist() + [nxt], draft.size, path, nxt, True)

    def accept_all_choices(draft, target_probs, draws):          # the same verifier as choices for the walk
        nxt = torch.multinomial(target_probs[-1], 1, generator=draws.generator)
        return torch.cat([draft.tokens, nxt])

    monkeypatch.setitem(dispatch.VERIFY_RULES, "exact", accept_all)
    monkeypatch.setitem(dispatch.CHOICE_RULES, "exact", accept_all_choices)
    tv, bound = two_token_tv(small_vocab_target, [0, 3, 2], SAMPLING_CASES[0],
                              lambda i: NoiseDrafter(6, 3, 1, True, seed=i), 2500)
    assert tv > 1.5 * bound, (tv, bound)


def test_stops_at_eos_and_truncates_at_max_new_tokens():
    model, _ = tiny_target(vocab=32, layers=2, hidden=32, scale=3.0, seed=5)
    free = SpeculativeDecoder(model).generate([3, 1, 4], 30).token_ids
    eos = free[5]
    model.eos_token_ids = {eos}
    first_eos = free.index(eos)
    for drafter in (None, TargetGreedyDrafter(model, k=6)):
        res = SpeculativeDecoder(model, drafter).generate([3, 1, 4], 30)
        assert res.token_ids == free[:first_eos] and res.finish_reason == "stop"
    model.eos_token_ids = set()
    res = SpeculativeDecoder(model, TargetGreedyDrafter(model, k=6)).generate([3, 1, 4], 9)
    assert res.token_ids == free[:9] and res.finish_reason == "length"


def test_user_mistakes(target):
    dec = SpeculativeDecoder(target)
    with pytest.raises(ContextLengthError, match="context window of 256"):
        dec.generate(list(range(30)) * 8, 20)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        dec.generate([1, 2], 0)
    with pytest.raises(ConfigError, match="rule"):
        SpeculativeDecoder(target, rule="nope")
    for bad in (dict(temperature=-1.0), dict(temperature=float("nan")), dict(top_p=0.0), dict(top_k=-2),
                dict(min_p=1.5), dict(seed=-1)):
        with pytest.raises(ConfigError):
            SamplingParams(**bad)


def test_hypothesis_style_sweep_of_prompts_and_depths(target):
    """Many random prompts x draft depths x tree shapes: greedy output never changes."""
    vanilla = SpeculativeDecoder(target)
    for (depth, branches), prompt in zip(itertools.product([2, 5, 8], [1, 2]), _prompts(6, seed=99)):
        expected = vanilla.generate(prompt, 16).token_ids
        for seed in range(3):
            got = SpeculativeDecoder(target, NoiseDrafter(32, depth, branches, seed=seed, peak=0.5)).generate(prompt, 16)
            assert got.token_ids == expected


def test_acceptance_counter_on_a_tree_by_hand():
    from specdec.types import AcceptanceCounter, Draft
    counter = AcceptanceCounter()
    tree = Draft(torch.tensor([5, 6, 7, 8]), torch.tensor([-1, -1, 1, 2]))    # two roots; 6 -> 7 -> 8
    counter.update(tree, VerifyResult([6, 7, 9], 2, [1, 2], 9, False))       # 6, 7 kept; 8 rejected
    counter.update(tree, VerifyResult([5, 9], 1, [0], 9, True))              # 5 kept, a leaf: bonus
    assert (counter.proposed, counter.reached, counter.accepted) == ([2, 2, 2], [2, 1, 1], [2, 1, 0])
    assert counter.rates == [1.0, 1.0, 0.0]
    assert counter.confidence(3) == [3 / 4, 2 / 4, 1 / 4]


def test_an_unseeded_sampled_request_leaves_the_global_rng_alone(target):
    """Without a seed the request draws from fresh OS entropy on its own generator: the process-wide torch RNG
    is neither reseeded nor advanced (another library's seeded run stays reproducible)."""
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    sampling = SamplingParams(temperature=1.0)
    runs = [SpeculativeDecoder(target, NoiseDrafter(32, 3, 1, True)).generate([1, 2, 3], 16, sampling).token_ids
            for _ in range(3)]
    assert torch.equal(torch.random.get_rng_state(), before)
    assert len({tuple(r) for r in runs}) > 1                   # each request got its own fresh stream


def test_stats_record_is_one_dict_with_counts_and_rates(target):
    res = SpeculativeDecoder(target, TargetGreedyDrafter(target, k=4)).generate([3, 1, 4], 25)
    d = res.stats.to_dict()
    assert d["accepted_per_depth"] == d["reached_per_depth"] == [5, 5, 5, 5]
    assert d["acceptance_per_depth"] == [1.0] * 4 and d["mean_accepted_length"] == 5.0
    assert d["new_tokens"] == 25 and d["seconds"] >= d["prefill_seconds"] > 0
