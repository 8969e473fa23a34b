"""Layer-skipping self-speculation: greedy output equals vanilla, the cache is left as found, sampling keeps the
target distribution, the replay arithmetic, the skip-set search, the fallback when drafting would lose, and
option errors."""

import pytest
import torch

from specdec.config import SamplingParams
from specdec.drafters import make_drafter, skip_search
from specdec.drafters.base import DecodeState
from specdec.drafters.layerskip import LayerSkipDrafter
from specdec.drafters.schedule import DraftLength
from specdec.drafters.cost import CostCurve
from specdec.drafters.skip_search import CostModel, Policy, SkipChoice, replay
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.models.hf_adapter import HFRuntime
from specdec.models.load import LoadedModel
from tests.distribution import two_token_tv
from tests.tiny import tiny_target


def forced(target, skip, **options):
    return make_drafter("layerskip", target, {"skip": skip, "force": True, **options})


@pytest.mark.parametrize("layers, options", [
    (4, {"skip": [1], "threshold": 0.0}),
    (4, {"skip": [1, 2], "threshold": 0.12}),        # tiny random models are unsure: max probs ~0.13
    (3, {"skip": [1], "threshold": 0.0, "num_draft": 2, "adaptive": False}),
])
def test_greedy_equals_vanilla(layers, options):
    target, _ = tiny_target(vocab=12, layers=layers, hidden=32, scale=3.0, seed=11)
    vanilla = SpeculativeDecoder(target)
    g = torch.Generator().manual_seed(0)
    accepted = 0
    for _ in range(4):
        prompt = torch.randint(0, 12, (12,), generator=g).tolist()
        spec = SpeculativeDecoder(target, forced(target, **options)).generate(prompt, 30)
        assert spec.token_ids == vanilla.generate(prompt, 30).token_ids
        accepted += spec.stats.emitted_tokens - spec.stats.target_forwards
    assert accepted > 0                   # drafts were made and some were kept


def prefilled_state(target, prompt, sampling=None, seed=0):
    """A DecodeState as the engine builds it: the cache holds every prompt token but the root."""
    rt, sampling = target.runtime, sampling or SamplingParams()
    cache = rt.new_cache(64)
    rt.forward(torch.tensor([prompt[:-1]]), cache, logits="none")
    return DecodeState(list(prompt), sampling, torch.Generator().manual_seed(seed), max_depth=20, max_nodes=20,
                       cache=cache)


def test_propose_leaves_the_cache_length_as_found_and_skipping_nothing_drafts_the_target():
    target, _ = tiny_target(vocab=12, layers=3, hidden=32, scale=3.0, seed=11)
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    state = prefilled_state(target, prompt)
    draft = forced(target, [], threshold=0.0, num_draft=5, adaptive=False).propose(state)
    assert state.cache.length == len(prompt) - 1
    # With no layer skipped the draft is the target's own greedy continuation.
    expected = SpeculativeDecoder(target).generate(prompt, 5).token_ids
    assert draft.tokens.tolist() == expected and draft.is_chain and draft.draft_probs is None


def test_sampling_draft_carries_its_distributions_and_the_threshold_stops_early():
    target, _ = tiny_target(vocab=12, layers=3, hidden=32, scale=3.0, seed=11)
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    state = prefilled_state(target, prompt, SamplingParams(temperature=1.0))
    draft = forced(target, [1], threshold=0.0, num_draft=4, adaptive=False).propose(state)
    assert state.cache.length == len(prompt) - 1
    assert draft.draft_probs.shape == (4, 12)
    assert torch.allclose(draft.draft_probs.sum(-1).cpu(), torch.ones(4))
    assert all(draft.draft_probs[i, t] > 0 for i, t in enumerate(draft.tokens.tolist()))
    never = forced(target, [1], threshold=0.999999, num_draft=4).propose(state)   # max prob < threshold
    assert never.size == 0 and state.cache.length == len(prompt) - 1


@pytest.mark.parametrize("sampling", [SamplingParams(temperature=1.0), SamplingParams(temperature=0.5, top_p=0.9)])
def test_sampling_keeps_the_target_distribution(sampling):
    # Peaky enough that the draft (layer 1 skipped) differs from the target: declaring uniform draft_probs
    # instead of the real ones gave TV 0.15 and 0.30 here against a bound of 0.12.
    target, _ = tiny_target(vocab=5, layers=3, hidden=16, heads=2, kv_heads=1, scale=8.0, seed=1)
    prompt = [0, 3, 2, 4, 1]

    def make(trial):
        return LayerSkipDrafter(target.runtime, (1,), 0.0, DraftLength(2))

    tv, bound = two_token_tv(target, prompt, sampling, make, 1500)
    assert tv < bound, (tv, bound)


COSTS = CostModel(verify=CostCurve((1, 2, 4, 8, 16), (1.0, 1.5, 2.0, 3.0, 5.0)), head=0.2, num_layers=4)


def test_cost_model_interpolates_verification_and_scales_drafts_with_kept_layers():
    assert COSTS.verify(1) == 1.0 and COSTS.verify(3) == 1.75 and COSTS.verify(6) == 2.5
    assert COSTS.verify(24) == 7.0                          # extrapolated from the last two sizes
    assert COSTS.draft(4) == 1.0 and COSTS.draft(2) == pytest.approx(0.6)


@pytest.mark.parametrize("agree, conf, policy, expected", [
    # all right, fixed length 2 over 7 tokens: steps emit 3, 3, 1 (the last step has no room to draft)
    ([1] * 7, [1.0] * 7, Policy(0.0, 2, False, 2), (7, 2 * 0.6 + 1.75 + 2 * 0.6 + 1.75 + 1.0, 3)),
    # token 1 wrong: step 1 keeps 1 of 2 and emits 2; then confidence 0.1 < 0.5 stops before a token is drafted
    # (one draft forward spent); the last step has no room to draft
    ([1, 0, 1, 1], [0.9, 0.9, 0.1, 0.9], Policy(0.5, 2, False, 2), (4, 2 * 0.6 + 1.75 + 0.6 + 1.0 + 1.0, 3)),
])
def test_replay_counts_tokens_and_costs_like_the_engine(agree, conf, policy, expected):
    tokens, seconds, steps = replay([bool(a) for a in agree], conf, policy, COSTS, kept=2)
    assert (tokens, steps) == (expected[0], expected[2]) and seconds == pytest.approx(expected[1])


def test_drafting_pays_off_only_with_accepted_drafts_and_an_estimate_above_one():
    assert SkipChoice((1,), 0.5, 1.2, 2.0, 0.0).pays_off
    assert not SkipChoice((1,), 0.5, 1.0, 2.0, 0.0).pays_off
    assert not SkipChoice((1,), 0.5, 1.0, 1.0, 0.0).pays_off     # e.g. texts too short to draft in: no signal


def test_search_returns_a_valid_skip_set_and_remembers_it(capsys):
    target, _ = tiny_target(vocab=32, layers=6, hidden=32, scale=3.0, seed=3)
    drafter = make_drafter("layerskip", target, {"search_seconds": 5, "calibration_tokens": 16})
    skip = drafter.skip
    assert list(skip) == sorted(set(skip)) and 1 <= len(skip) <= 4
    assert all(0 < i < 5 for i in skip)                    # first and last layers are kept
    assert drafter.kept == tuple(i for i in range(6) if i not in skip)
    assert "estimated speedup" in capsys.readouterr().err
    again = make_drafter("layerskip", target, {"search_seconds": 5, "calibration_tokens": 16})
    assert again.skip == skip and again.choice.cached


def test_falls_back_to_plain_steps_when_the_estimate_is_below_one(monkeypatch, capsys):
    # Drafting as dear as a full forward, verification linear in k: no skip set can pay off.
    dear = CostModel(verify=CostCurve((1, 2, 4, 8, 16), (1.0, 2.0, 4.0, 8.0, 16.0)), head=1.0, num_layers=4)
    monkeypatch.setattr(skip_search, "measure_costs", lambda rt, context: dear)
    target, _ = tiny_target(vocab=12, layers=4, hidden=32, scale=3.0, seed=11)
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    drafter = make_drafter("layerskip", target, {"skip": [1], "calibration_tokens": 8})
    err = capsys.readouterr().err
    assert "not above 1" in err and f"{drafter.choice.estimated_speedup:.2f}x" in err
    assert drafter.choice.estimated_speedup < 1 and not drafter.active
    assert drafter.propose(prefilled_state(target, prompt)).size == 0
    pushed = make_drafter("layerskip", target, {"skip": "auto", "force": True, "threshold": 0.0,
                                                 "calibration_tokens": 8, "search_seconds": 2})
    assert pushed.active and pushed.propose(prefilled_state(target, prompt)).size > 0


@pytest.mark.parametrize("options, named", [
    ({"skip": [4]}, "skip=[4]"), ({"skip": "middle"}, "skip='middle'"), ({"skip": [0, 1, 2, 3]}, "every layer"),
    ({"skip": [1.5]}, "skip=[1.5]"), ({"threshold": 1.0}, "threshold=1.0"), ({"threshold": "high"}, "threshold"),
    ({"num_draft": 0}, "draft length 0"), ({"calibration_tokens": 2}, "calibration_tokens=2"),
    ({"search_seconds": 0}, "search_seconds=0"), ({"force": "yes"}, "force='yes'"), ({"depth": 3}, "depth"),
])
def test_bad_options_raise_config_error(options, named):
    target, _ = tiny_target(vocab=12, layers=4, hidden=32)
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace(".", r"\.")):
        make_drafter("layerskip", target, options)


def test_needs_the_native_runtime():
    _, hf = tiny_target(vocab=12, layers=2, hidden=32)
    target = LoadedModel(name="tiny-hf", runtime=HFRuntime(hf, max_context=64), tokenizer=None,
                         eos_token_ids=set(), source="memory")
    with pytest.raises(ConfigError, match="native"):
        make_drafter("layerskip", target, {"skip": [1], "force": True})
