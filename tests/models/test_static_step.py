"""The fixed-shape pass for CUDA graphs (specdec/models/static_step.py): on any device its arithmetic is the
dynamic pass's (logits and cache contents, chains and trees, a slot of a shared pool, padded to a bucket), the
engine's greedy output with it is vanilla's token for token, and passes it cannot take go the dynamic way."""

from __future__ import annotations

import pytest
import torch

from specdec.config import SamplingParams
from specdec.drafters import make_drafter
from specdec.engine import Engine, Request, SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.models.load import load_model
from specdec.models.runtime import Segment
from specdec.tree import tree_inputs
from tests.test_drafters import TargetGreedyDrafter
from tests.trained_helpers import eagle_drafter
from tests.tiny import TEST_DEVICE, tiny_target, write_hf_dir

PARENTS = torch.tensor([-1, 0, 0, 1, -1])          # root -> 0 -> {1, 2}, 1 -> 3; root -> 4


def _pair():
    dynamic = tiny_target(vocab=64, layers=2, hidden=32, heads=4, kv_heads=2, seed=2)[0]
    static = tiny_target(vocab=64, layers=2, hidden=32, heads=4, kv_heads=2, seed=2)[0]
    static.runtime.use_static_step((1, 2, 4, 8))
    return dynamic, static


@pytest.mark.parametrize("new,parents", [(1, None), (3, None), (6, PARENTS)])
@pytest.mark.parametrize("slot", [None, 1])
def test_a_static_pass_scores_and_caches_as_the_dynamic_pass(new, parents, slot):
    dynamic, static = _pair()
    g = torch.Generator().manual_seed(3)
    prompt, rows = torch.randint(0, 64, (1, 11), generator=g), torch.randint(0, 64, (1, new), generator=g)
    outs, caches = [], []
    for model in (dynamic, static):
        rt = model.runtime
        cache = rt.new_cache(64) if slot is None else rt.new_cache(64, batch=3).slot(slot)
        rt.forward(prompt, cache, logits="none")
        seg = Segment(rows, cache) if parents is None else Segment(rows, cache, *reversed(tree_inputs(parents, 11)))
        outs.append(rt.forward_batch([seg], hidden_layers=(0, -1))[0])
        caches.append(cache)
    assert static.runtime.static.replays == 1 and dynamic.runtime.static is None
    assert outs[1].logits.shape == (1, new, 64)                 # padded to the bucket of 8 (or 4, 1), cut back
    torch.testing.assert_close(outs[1].logits, outs[0].logits, rtol=1e-5, atol=1e-5)
    assert sorted(outs[1].hidden) == [-1, 0] and outs[1].hidden[0].shape == (1, new, 32)
    for k in (0, -1):                                           # the states a feature-level head reads
        torch.testing.assert_close(outs[1].hidden[k], outs[0].hidden[k], rtol=1e-5, atol=1e-5)
    assert caches[0].length == caches[1].length == 11 + new
    for a, b in ((caches[0].k, caches[1].k), (caches[0].v, caches[1].v)):
        torch.testing.assert_close(b[..., :11 + new, :], a[..., :11 + new, :], rtol=1e-5, atol=1e-5)


def test_greedy_output_with_the_static_step_is_vanillas_for_drafts_and_batches():
    dynamic, static = _pair()
    prompts = [[3, 1, 4, 1, 5], [9, 2, 6], [5, 3, 5, 8, 9, 7, 9]]
    vanilla = [SpeculativeDecoder(dynamic).generate(p, 24).token_ids for p in prompts]
    for drafter in (None, TargetGreedyDrafter(static, k=3), make_drafter("pld", static, {}),
                    eagle_drafter(static, depth=3, topk=2)):                     # a tree, hidden states
        assert [SpeculativeDecoder(static, drafter).generate(p, 24).token_ids for p in prompts] == vanilla
    used = static.runtime.static.replays
    assert used > 3 * 24 / 4                                    # the decode passes took the static path
    engine = Engine(static, max_num_seqs=3)                      # several requests a pass: the dynamic path
    requests = [Request(p, 24, SamplingParams()) for p in prompts]
    for r in requests:
        engine.add(r)
    by_id = {res.request_id: res.token_ids for res in engine.run()}
    assert [by_id[r.request_id] for r in requests] == vanilla


def test_passes_it_cannot_take_go_the_dynamic_way():
    dynamic, static = _pair()
    rt = static.runtime
    cache = rt.new_cache(16)
    rt.forward(torch.arange(10).unsqueeze(0), cache, logits="none")    # a prompt of 10 rows: above every bucket
    assert rt.static.replays == 0
    rt.forward(torch.tensor([[1, 2, 3, 4, 5]]), cache)                 # 5 rows pad to 8: 18 > the 16 of the cache
    assert rt.static.replays == 0 and cache.length == 15
    rt.forward(torch.tensor([[6]]), cache)
    assert rt.static.replays == 1 and cache.length == 16
    q4 = tiny_target(vocab=64, layers=1, hidden=32, heads=4, kv_heads=2, quant="q4")[0].runtime
    with pytest.raises(ConfigError, match="dense weights only"):
        q4.use_static_step()


def test_requests_reuse_one_cache_buffer_and_its_graphs_and_live_engines_never_share_one(monkeypatch):
    """Capture needs CUDA; which buffers and graphs are kept is bookkeeping, checked here with a stand-in for the
    capture that counts captures."""
    import specdec.models.static_step as st
    captures = []

    def capture(rt, pool, slot, layers, inputs):
        captures.append((id(pool.k), inputs[0].shape[1]))
        return type("G", (), {"replay": lambda self, inputs: st._static_pass(rt, pool, slot, layers, *inputs)})()
    monkeypatch.setattr(st, "_Captured", capture)
    dynamic, static = _pair()
    step = static.runtime.static
    step.graph = True
    vanilla = SpeculativeDecoder(dynamic).generate([3, 1, 4], 6).token_ids
    for n in (3, 7, 40):                                         # requests of different lengths, one at a time
        prompt = [3, 1, 4] * n
        assert SpeculativeDecoder(static).generate(prompt, 6).token_ids == \
            SpeculativeDecoder(dynamic).generate(prompt, 6).token_ids
    assert len({pool for pool, _ in captures}) == 1 and len(captures) == 1   # one buffer, one graph (bucket 1)
    held = static.runtime.new_slots(64, 1)                       # an engine still holding its slots ...
    assert SpeculativeDecoder(static).generate([3, 1, 4], 6).token_ids == vanilla
    assert held[0].pool is not step._buffers[(256, 1)][0]        # ... never shares its buffer with another
    assert len({pool for pool, _ in captures}) == 2
    del held
    for _ in range(3):                                           # at most MAX_POOLS buffers keep graphs
        keep = static.runtime.new_slots(64, 1)
        SpeculativeDecoder(static).generate([3, 1, 4], 6)
        del keep
    assert len({key[1] for key in step._captured}) <= st.MAX_POOLS and len(step._buffers) <= st.MAX_POOLS


def test_load_model_turns_cuda_graphs_on_for_a_cuda_device_and_refuses_them_elsewhere(tmp_path):
    model_dir, _ = write_hf_dir(tmp_path / "model")
    if torch.device(TEST_DEVICE).type == "cuda":
        target = load_model(str(model_dir), device=TEST_DEVICE, cuda_graphs=True, quiet=True)
        plain = load_model(str(model_dir), device=TEST_DEVICE, quiet=True)
        assert target.runtime.static is not None and target.runtime.static.graph
        assert SpeculativeDecoder(target).generate("hello", 8).token_ids == \
            SpeculativeDecoder(plain).generate("hello", 8).token_ids
        with pytest.raises(ConfigError, match="dense weights only"):
            load_model(str(model_dir), device=TEST_DEVICE, dtype="q4", cuda_graphs=True, quiet=True)
    else:
        with pytest.raises(ConfigError, match="CUDA graphs need a CUDA device"):
            load_model(str(model_dir), device=TEST_DEVICE, cuda_graphs=True, quiet=True)
