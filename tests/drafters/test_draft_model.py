"""Independent draft model: greedy identical to vanilla (chains and trees), the drafter's own cache stays in
step, sampling keeps the target distribution, mismatched vocabularies are refused."""

import pytest
import torch

from specdec.config import SamplingParams
from specdec.drafters.cost import CostCurve
from specdec.drafters.draft_model import DraftModelDrafter, check_same_vocabulary
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.models.config import DecoderConfig
from specdec.models.llama import LlamaRuntime
from specdec.models.load import LoadedModel
from tests.distribution import two_token_tv
from tests.tiny import tiny_target

# Draft length by a cost curve (the `fit` option): flat, like a GPU's (a token more costs a few % of one). Scaled to
# seconds so that the choice follows the draft's confidence alone: the tiny draft's own wall time (about a
# millisecond a token, more on a busy machine) must not decide it. A curve in tiny-model milliseconds made a
# loaded CI machine draft nothing at all.
FIT = {"costs": CostCurve((1, 2, 4, 8, 16), (1.0, 1.02, 1.05, 1.1, 1.2))}


def noisy_copy(hf, noise: float, seed: int = 0) -> LoadedModel:
    """A draft model: the target's weights plus Gaussian noise (noise 0 = the target itself)."""
    g = torch.Generator().manual_seed(seed)
    state = {k: v + noise * torch.randn(v.shape, generator=g) * v.std() if v.dim() == 2 else v
             for k, v in hf.state_dict().items()}
    return LoadedModel("draft", LlamaRuntime(DecoderConfig.from_hf(hf.config), state), None, set(), "memory")


@pytest.fixture(scope="module")
def pair():
    target, hf = tiny_target(vocab=32, layers=2, hidden=32, scale=3.0, seed=5)
    return target, hf


def _prompts(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 32, (int(torch.randint(2, 10, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


def test_the_target_as_its_own_draft_is_always_accepted(pair):
    target, hf = pair
    drafter = DraftModelDrafter(noisy_copy(hf, 0.0), num_draft=4, adaptive=False)
    res = SpeculativeDecoder(target, drafter).generate([1, 2, 3], 30)
    assert res.token_ids == SpeculativeDecoder(target).generate([1, 2, 3], 30).token_ids
    assert res.stats.mean_accepted_length == 5.0        # 4 accepted + bonus every step: the caches stay in step


@pytest.mark.parametrize("options", [{"num_draft": 3}, {"num_draft": 5, "adaptive": False},
                                     {"num_draft": 3, "branches": 2, "width": 3}, {"num_draft": 3, **FIT}],
                         ids=["adaptive", "fixed", "tree", "fit"])
def test_greedy_equals_vanilla(pair, options):
    target, hf = pair
    vanilla = SpeculativeDecoder(target)
    accepted = 0
    for i, prompt in enumerate(_prompts(6, seed=len(options))):
        spec = SpeculativeDecoder(target, DraftModelDrafter(noisy_copy(hf, 0.3, seed=i), **options))
        res = spec.generate(prompt, 24)
        assert res.token_ids == vanilla.generate(prompt, 24).token_ids
        accepted += res.stats.emitted_tokens - res.stats.target_forwards
    assert accepted > 0


@pytest.mark.parametrize("options", [{"num_draft": 3}, {"num_draft": 2, "branches": 2, "width": 2},
                                     {"num_draft": 3, "max_draft": 4, **FIT}], ids=["chain", "tree", "chain-fit"])
def test_sampling_keeps_the_target_distribution(options):
    target, hf = tiny_target(vocab=6, layers=1, hidden=16, heads=2, kv_heads=1, scale=2.0, seed=7)
    draft = noisy_copy(hf, 0.5)
    tv, bound = two_token_tv(target, [0, 3, 2], SamplingParams(temperature=0.9, top_k=5),
                             lambda i: DraftModelDrafter(draft, **options), 2500)
    assert tv < bound, (tv, bound)


def test_fit_drafts_the_longest_chain_when_verification_is_free_and_none_when_it_is_ruinous(pair):
    target, hf = pair
    # "Free": a pass costs the same 1e9 s whatever its length, so a drafted token pays whenever its estimated
    # reach exceeds (expected tokens x drafting seconds) / 1e9. At 1e3 s that bound (~1e-5) sat near the reach of a
    # 6-token chain on this flat tiny model, and drafting time decided the length run to run.
    free = {"costs": CostCurve((1, 64), (1e9, 1e9))}
    ruinous = {"costs": CostCurve((1, 2), (1e-3, 1e3))}
    vanilla = SpeculativeDecoder(target).generate([1, 2, 3], 30)
    res = SpeculativeDecoder(target, DraftModelDrafter(noisy_copy(hf, 0.0), max_draft=6, **free)).generate([1, 2, 3], 30)
    assert res.token_ids == vanilla.token_ids and res.stats.mean_accepted_length > 5.0      # 6 + bonus, to the end
    res = SpeculativeDecoder(target, DraftModelDrafter(noisy_copy(hf, 0.0), **ruinous)).generate([1, 2, 3], 30)
    assert res.token_ids == vanilla.token_ids and res.stats.target_forwards == res.stats.emitted_tokens


def test_mismatched_vocabularies_are_refused(pair):
    target, _ = pair
    other, _ = tiny_target(vocab=40, layers=1, hidden=16)
    with pytest.raises(ConfigError, match="does not share the tokenizer"):
        check_same_vocabulary(target, other)


def test_draft_needs_a_model_option(pair):
    from specdec.drafters import make_drafter
    with pytest.raises(ConfigError, match="-o model=NAME"):
        make_drafter("draft", pair[0], {})


def test_sampled_proposals_share_the_requests_noise_under_the_exact_rule(pair):
    """A draft model equal to the target proposes, at each position, the very token the target samples there
    (same distribution, same position-keyed noise): every draft token is accepted while sampling. Drawn from
    the generator instead (rule "rejection"), the same draft is accepted less often."""
    target, hf = pair
    sampling = SamplingParams(temperature=1.0, seed=3)
    same = SpeculativeDecoder(target, DraftModelDrafter(noisy_copy(hf, 0.0), num_draft=4, adaptive=False))
    res = same.generate([1, 2, 3], 25, sampling)
    assert res.stats.acceptance.rates[:4] == [1.0] * 4
    assert res.token_ids == SpeculativeDecoder(target).generate([1, 2, 3], 25, sampling).token_ids
    noisy = lambda: DraftModelDrafter(noisy_copy(hf, 0.5, seed=1), num_draft=4, adaptive=False)  # noqa: E731
    coupled = SpeculativeDecoder(target, noisy()).generate([1, 2, 3], 60, sampling).stats.mean_accepted_length
    assert coupled > 1.0
