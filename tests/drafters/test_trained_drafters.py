"""EAGLE, Medusa and distilled drafters with freshly initialised networks: greedy output identical to vanilla
(chains and trees, full and reduced draft vocabularies), sampling keeps the target distribution, and their own
logic (EAGLE-2 tree selection, Medusa trees from accuracies, the distilled runtime's vocabulary mapping)."""

import pytest
import torch

from specdec.config import SamplingParams
from specdec.drafters.base import DecodeState
from specdec.drafters.cost import CostCurve
from specdec.drafters.eagle import _select
from specdec.drafters.medusa import MedusaDrafter, tree_from_accuracies
from specdec.engine import SpeculativeDecoder
from tests.distribution import two_token_tv
from tests.tiny import tiny_target
from tests.trained_helpers import distilled_drafter, eagle3_drafter, eagle_drafter, medusa_drafter

BUILDERS = {
    "eagle-tree": lambda t, s: eagle_drafter(t, s, depth=4, topk=3, nodes=10),
    "eagle-chain": lambda t, s: eagle_drafter(t, s, depth=5, topk=1, nodes=5),
    "eagle-small-vocab": lambda t, s: eagle_drafter(t, s, draft_vocab=7, depth=3, topk=2, nodes=6),
    "eagle-fused": lambda t, s: eagle_drafter(t, s, fuse=(0,), depth=3, topk=2, nodes=6),
    "eagle-fit": lambda t, s: eagle_drafter(t, s, depth=3, topk=2, nodes=6,
                                            costs=CostCurve((1, 2, 4, 8), (1.0, 1.02, 1.05, 1.6))),
    "eagle3-tree": lambda t, s: eagle3_drafter(t, s, depth=4, topk=3, nodes=10),
    "eagle3-chain-small-vocab": lambda t, s: eagle3_drafter(t, s, draft_vocab=7, depth=4, topk=1, nodes=4),
    "medusa": lambda t, s: medusa_drafter(t, s),
    "medusa-small-vocab": lambda t, s: medusa_drafter(t, s, draft_vocab=6, nodes=5),
    "distilled-chain": lambda t, s: distilled_drafter(t, s, num_draft=3),
    "distilled-tree": lambda t, s: distilled_drafter(t, s, branches=2, width=3, num_draft=3, draft_vocab=8),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_greedy_equals_vanilla(name):
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, scale=3.0, seed=3)
    vanilla = SpeculativeDecoder(target)
    g = torch.Generator().manual_seed(1)
    accepted = 0
    for i in range(6):
        prompt = torch.randint(0, 12, (int(torch.randint(2, 15, (1,), generator=g)),), generator=g).tolist()
        spec = SpeculativeDecoder(target, BUILDERS[name](target, i)).generate(prompt, 25)
        assert spec.token_ids == vanilla.generate(prompt, 25).token_ids, (name, prompt)
        accepted += spec.stats.emitted_tokens - spec.stats.target_forwards
    assert accepted > 0                   # drafts were really accepted sometimes, not all rejected


@pytest.mark.parametrize("name", ["eagle-tree", "eagle-fit", "eagle-fused", "eagle3-tree", "medusa", "distilled-chain",
                                  "distilled-tree"])
def test_sampling_keeps_the_target_distribution(name):
    target, _ = tiny_target(vocab=6, layers=1, hidden=16, heads=2, kv_heads=1, scale=2.0, seed=7)
    sampling = SamplingParams(temperature=0.9, top_p=0.95)
    tv, bound = two_token_tv(target, [0, 3, 2, 5], sampling, lambda i: BUILDERS[name](target, i % 3), 2000)
    assert tv < bound, (tv, bound)


Q4_BUILDERS = ["eagle-tree", "eagle-fused", "eagle3-tree", "medusa", "distilled-tree"]


def _q4_target(**kw):
    """A q4 tiny target whose heads' shapes the int4 kernel takes (sizes multiples of 16 and 32)."""
    return tiny_target(vocab=32, layers=2, hidden=32, heads=4, kv_heads=2, quant="q4", **kw)[0]


def _q4_modules(drafter) -> int:
    from specdec.models.quant import Q4Module
    net = drafter.net if hasattr(drafter, "net") else drafter.rt.net
    return sum(isinstance(m, Q4Module) for m in net.modules())


@pytest.mark.parametrize("name", Q4_BUILDERS)
def test_heads_beside_a_q4_target_draft_in_4_bits_and_stay_lossless(name):
    target = _q4_target(scale=3.0, seed=3)
    vanilla = SpeculativeDecoder(target)
    g = torch.Generator().manual_seed(1)
    accepted = 0
    for i in range(4):
        drafter = BUILDERS[name](target, i)
        assert _q4_modules(drafter) >= 2                     # placed like a loaded drafter: linears in 4 bits
        prompt = torch.randint(0, 32, (int(torch.randint(2, 15, (1,), generator=g)),), generator=g).tolist()
        spec = SpeculativeDecoder(target, drafter).generate(prompt, 25)
        assert spec.token_ids == vanilla.generate(prompt, 25).token_ids, (name, prompt)
        accepted += spec.stats.emitted_tokens - spec.stats.target_forwards
    assert accepted > 0


@pytest.mark.parametrize("name", ["eagle-tree", "medusa"])
def test_heads_beside_a_q4_target_keep_the_target_distribution(name):
    target = tiny_target(vocab=16, layers=1, hidden=32, heads=2, kv_heads=1, scale=2.0, seed=7, quant="q4")[0]
    sampling = SamplingParams(temperature=0.9, top_p=0.95)
    tv, bound = two_token_tv(target, [0, 3, 2, 5], sampling, lambda i: BUILDERS[name](target, i % 3), 2000)
    assert tv < bound, (tv, bound)


def test_quantize_linears_replaces_only_what_the_kernel_takes():
    from specdec.models.quant import Q4Module, quantize_linears
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 12))  # 12: not % 16
    x = torch.randn(3, 64)
    bias = net[0].bias.detach().clone()
    assert quantize_linears(net) == 1
    assert isinstance(net[0], Q4Module) and isinstance(net[2], torch.nn.Linear)
    with torch.no_grad():
        got = net[0](x)
        # the kernel's product: bfloat16 activations times the 4-bit weights it holds (bfloat16 arithmetic inside:
        # error within 2^-7 of the sum of the terms' magnitudes), + bias
        xb, w = x.to(torch.bfloat16).float(), net[0].q4.weight
        product, magnitude = xb @ w, xb.abs() @ w.abs()
    assert got.dtype == x.dtype
    assert ((got - bias - product).abs() <= 2 ** -7 * magnitude + 1e-6).all()
    assert net(x).shape == (3, 12)


def test_eagle_selection_keeps_the_best_nodes_closed_under_ancestors():
    # root children a(-0.1) b(-2.0); a's children c(-0.3) d(-0.2); b's child e(-2.5)
    tokens, parents, scores = [10, 11, 12, 13, 14], [-1, -1, 0, 0, 1], [-0.1, -2.0, -0.3, -0.2, -2.5]
    d = _select(tokens, parents, scores, budget=3)
    assert d.tokens.tolist() == [10, 12, 13] and d.parents.tolist() == [-1, 0, 0]
    assert torch.allclose(d.confidence, torch.tensor([-0.1, -0.3, -0.2]).exp())   # cumulative draft probability
    d = _select(tokens, parents, scores, budget=5)
    assert d.tokens.tolist() == tokens and d.parents.tolist() == parents


def test_eagle_tree_respects_node_budget_and_depth():
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, seed=3)
    drafter = eagle_drafter(target, depth=3, topk=3, nodes=7)
    prompt = [1, 2, 3, 4]
    drafter.begin(prompt)
    out = target.runtime.forward(torch.tensor([prompt[:-1]]), target.runtime.new_cache(32), logits="none",
                                 hidden_layers=(-1,))
    state = DecodeState(prompt, SamplingParams(), torch.Generator(), max_depth=10, max_nodes=10,
                        hidden={-1: out.hidden[-1][0]})
    draft = drafter.propose(state)
    assert draft.size == 7 and int(draft.depths().max()) <= 3
    assert drafter.cache.length == len(prompt) - 1          # draft entries rolled back


def test_medusa_tree_from_accuracies():
    acc = [[0.6, 0.2, 0.1], [0.4, 0.2, 0.1]]
    paths = tree_from_accuracies(acc, 4)
    # values: (0)=.6 (1)=.2 (0,0)=.24 (2)=.1 (0,1)=.12 -> best four: (0), (0,0), (1), (0,1)
    assert paths == [(0,), (0, 0), (1,), (0, 1)]
    assert all(p[:-1] in paths for p in paths if len(p) > 1)
    assert len(tree_from_accuracies(acc, 100)) == 3 + 9      # every path of depth <= 2


def test_distilled_runtime_maps_the_draft_vocabulary():
    target, _ = tiny_target(vocab=12, layers=1, hidden=16, heads=2, kv_heads=1, seed=2)
    drafter = distilled_drafter(target, draft_vocab=5)
    rt = drafter.rt
    out = rt.forward(torch.tensor([[1, 2, 3]]), rt.new_cache(8), logits="all")
    assert out.logits.shape == (1, 3, 12)
    assert torch.isinf(out.logits[..., 5:]).all() and torch.isfinite(out.logits[..., :5]).all()


def test_medusa_draft_cut_to_the_remaining_depth_stays_a_valid_tree():
    target, _ = tiny_target(vocab=12, layers=1, hidden=16, heads=2, kv_heads=1, seed=2)
    drafter = medusa_drafter(target, heads=3)
    drafter = MedusaDrafter(drafter.net, tree_from_accuracies([[0.9, 0.3, 0.1, 0.05]] * 3, 40))  # deep paths early
    prompt = [1, 2, 3, 4]
    out = target.runtime.forward(torch.tensor([prompt[:-1]]), target.runtime.new_cache(32), logits="none",
                                 hidden_layers=(-1,))
    full = drafter.propose(DecodeState(prompt, SamplingParams(), torch.Generator(), max_depth=10, max_nodes=40,
                                       hidden={-1: out.hidden[-1][0]}))
    cut = drafter.propose(DecodeState(prompt, SamplingParams(), torch.Generator(), max_depth=1, max_nodes=40,
                                      hidden={-1: out.hidden[-1][0]}))
    assert int(full.depths().max()) == 3 and int(cut.depths().max()) == 1
    assert cut.parents.tolist() == [-1] * cut.size
    assert cut.tokens.tolist() == full.tokens[full.depths() == 1].tolist()
    mid = drafter.propose(DecodeState(prompt, SamplingParams(), torch.Generator(), max_depth=2, max_nodes=40,
                                      hidden={-1: out.hidden[-1][0]}))
    assert all(p < i for i, p in enumerate(mid.parents.tolist()))
    assert int(mid.depths().max()) == 2
    paths = lambda d: [tuple(_path(d, i)) for i in range(d.size)]
    assert sorted(paths(mid)) == sorted(p for p in paths(full) if len(p) <= 2)


def _path(draft, i):
    out = []
    while i >= 0:
        out.append(int(draft.tokens[i]))
        i = int(draft.parents[i])
    return out[::-1]
