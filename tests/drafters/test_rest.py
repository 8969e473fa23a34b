"""REST drafting: trees from the datastore within the engine's bounds, clear option errors, and the two
end-to-end guarantees (greedy identical to vanilla, sampling keeps the target distribution)."""

import pytest
import torch

from specdec.config import SamplingParams
from specdec.datastore import build_datastore, save_datastore
from specdec.drafters import make_drafter
from specdec.drafters.base import DecodeState
from specdec.drafters.rest import RestDrafter
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError, ModelFileError
from specdec.types import VerifyResult
from tests.distribution import two_token_tv
from tests.tiny import tiny_target


def state(tokens, max_depth=10, max_nodes=10):
    return DecodeState(tokens, SamplingParams(), torch.Generator(), max_depth=max_depth, max_nodes=max_nodes)


def test_proposes_the_frequency_weighted_trie_within_the_bounds():
    store = build_datastore([[1, 2, 3, 4, 5]] * 3 + [[1, 2, 6, 7]], separator=0, vocab_size=10)
    drafter = RestDrafter(store, depth=3, adaptive=False)
    draft = drafter.propose(state([9, 1, 2]))
    assert draft.tokens.tolist() == [3, 4, 5, 6, 7] and draft.parents.tolist() == [-1, 0, 1, -1, 3]
    assert draft.draft_probs is None
    small = drafter.propose(state([9, 1, 2], max_depth=2, max_nodes=3))
    assert small.tokens.tolist() == [3, 4, 6] and int(small.depths().max()) == 2   # counts 3, 3, 1 beat 1
    assert drafter.propose(state([8, 8])).size == 0                     # no match: a plain decoding step


def test_depth_adapts_to_acceptance():
    store = build_datastore([[1, 2, 3, 4, 5, 6, 7, 8, 9]], separator=0, vocab_size=10)
    drafter = RestDrafter(store, depth=2, max_depth=4)
    assert drafter.propose(state([1, 2])).size == 2
    drafter.on_accept(VerifyResult([3, 4, 5], 2, [0, 1], 5, True))       # all accepted: deeper next time
    assert drafter.propose(state([1, 2])).size == 4
    drafter.on_accept(VerifyResult([3], 0, [], 3, False))
    assert drafter.propose(state([1, 2])).size == 3


def test_option_errors(tmp_path):
    target, _ = tiny_target(vocab=12, layers=1, hidden=16, heads=2, kv_heads=1)
    with pytest.raises(ConfigError, match="specdec datastore build --model tiny-llama"):
        make_drafter("rest", target, {})
    save_datastore(build_datastore([[1, 2, 3]], separator=0, vocab_size=50), tmp_path / "ds")
    with pytest.raises(ModelFileError, match="vocabulary of 50 tokens.*has 12"):
        make_drafter("rest", target, {"datastore": str(tmp_path / "ds")})
    with pytest.raises(ConfigError, match="min_suffix=3, max_suffix=2"):
        RestDrafter(build_datastore([[1]], separator=0, vocab_size=12), min_suffix=3, max_suffix=2)


@pytest.fixture(scope="module")
def greedy_setup(tmp_path_factory):
    """A tiny target, prompts, their vanilla greedy outputs, and a datastore on disk holding some of them."""
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, scale=3.0, seed=11)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 12, (10,), generator=g).tolist() for _ in range(5)]
    vanilla = [SpeculativeDecoder(target).generate(p, 24).token_ids for p in prompts]
    noise = [torch.randint(0, 12, (30,), generator=g).tolist() for _ in range(20)]
    docs = [p + out[:16] for p, out in zip(prompts[:3], vanilla[:3])] + noise    # outputs shared in part
    path = tmp_path_factory.mktemp("rest") / "ds"
    save_datastore(build_datastore(docs, separator=1, vocab_size=12), path)
    return target, prompts, vanilla, str(path)


@pytest.mark.parametrize("options", [{}, {"depth": 3, "max_nodes": 4, "adaptive": False, "min_suffix": 1}])
def test_greedy_equals_vanilla(greedy_setup, options):
    target, prompts, vanilla, path = greedy_setup
    drafter = make_drafter("rest", target, {"datastore": path, **options})
    accepted = 0
    for prompt, expected in zip(prompts, vanilla):
        spec = SpeculativeDecoder(target, drafter).generate(prompt, 24)
        assert spec.token_ids == expected
        accepted += spec.stats.emitted_tokens - spec.stats.target_forwards
    assert accepted > 0                   # the drafts were really used, not all rejected


def test_sampling_keeps_the_target_distribution():
    target, _ = tiny_target(vocab=6, layers=1, hidden=16, heads=2, kv_heads=1, scale=2.0, seed=7)
    prompt = [0, 3, 2, 0, 3, 2, 5, 0, 3]
    g = torch.Generator().manual_seed(0)
    docs = [[0, 3] + torch.randint(0, 6, (4,), generator=g).tolist() for _ in range(30)]   # branching trees
    store = build_datastore(docs, separator=1, vocab_size=6)
    sampling = SamplingParams(temperature=0.9, top_p=0.95)
    tv, bound = two_token_tv(target, prompt, sampling, lambda i: RestDrafter(store, min_suffix=1, depth=3), 2000)
    assert tv < bound, (tv, bound)
