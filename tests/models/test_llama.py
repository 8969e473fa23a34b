"""Native runtime vs transformers on tiny random models; KV cache rollback / keep; tree masks."""

import pytest
import torch

from specdec.tree import tree_inputs
from tests.tiny import tiny_target

ARCHS = [("llama", {}), ("qwen2", {"tie": True}), ("mistral", {}),
         ("llama", {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64}})]


@pytest.mark.parametrize("arch,kw", ARCHS, ids=["llama", "qwen2", "mistral", "llama3-rope"])
def test_logits_match_transformers(arch, kw):
    target, hf = tiny_target(arch, vocab=97, layers=3, hidden=64, heads=4, kv_heads=2, **kw)
    ids = torch.randint(0, 97, (1, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(ids, output_hidden_states=True)
    rt = target.runtime
    cache = rt.new_cache(64)
    # Prefill, one token, then a chunk: every path through the cache must give the same logits.
    parts = [rt.forward(ids[:, :25], cache, hidden_layers=(0, -1)), rt.forward(ids[:, 25:26], cache),
             rt.forward(ids[:, 26:], cache)]
    got = torch.cat([p.logits for p in parts], dim=1).cpu()      # the runtime may be on a GPU, transformers is not
    assert (got - ref.logits).abs().max() < 1e-4
    assert (parts[0].hidden[-1].cpu() - ref.hidden_states[-1][:, :25]).abs().max() < 1e-4
    assert (parts[0].hidden[0].cpu() - ref.hidden_states[1][:, :25]).abs().max() < 1e-4


def test_rollback_then_decode_equals_fresh_prefill():
    target, _ = tiny_target(vocab=50, layers=2)
    rt = target.runtime
    ids = torch.randint(0, 50, (1, 30), generator=torch.Generator().manual_seed(2))
    cache = rt.new_cache(64)
    rt.forward(ids[:, :20], cache)
    rt.forward(torch.randint(0, 50, (1, 7)), cache)     # a rejected draft
    cache.rollback(7)
    after_rollback = rt.forward(ids[:, 20:], cache).logits
    fresh = rt.new_cache(64)
    expected = rt.forward(ids, fresh).logits[:, 20:]
    assert cache.length == fresh.length == 30
    assert torch.allclose(after_rollback, expected, atol=1e-5)


def test_tree_forward_and_keep_equal_sequential_decoding():
    """Scoring a tree in one pass equals scoring each root path alone; keep() leaves a cache as if the
    accepted path had been decoded sequentially."""
    target, _ = tiny_target(vocab=50, layers=2)
    rt = target.runtime
    prompt = torch.randint(0, 50, (1, 12), generator=torch.Generator().manual_seed(3))
    parents = torch.tensor([-1, 0, 0, 1, -1, 4, 2])
    tokens = torch.tensor([5, 6, 7, 8, 9, 10, 11])
    root = 3
    cache = rt.new_cache(64)
    rt.forward(prompt, cache)
    start = cache.length
    mask, positions = tree_inputs(parents, start)
    tree_logits = rt.forward(torch.cat([torch.tensor([root]), tokens])[None], cache, positions=positions,
                             tree_mask=mask).logits[0]
    for node, path in {3: [0, 1, 3], 6: [0, 2, 6], 5: [4, 5]}.items():
        seq = rt.new_cache(64)
        rt.forward(prompt, seq)
        seq_ids = torch.tensor([[root] + tokens[path].tolist()])
        seq_logits = rt.forward(seq_ids, seq).logits[0]
        rows = [0] + [i + 1 for i in path]
        assert torch.allclose(tree_logits[rows], seq_logits, atol=1e-5)
    # keep root + path [0, 2, 6], then decode one more token: same as sequential
    cache.keep(start, [0, 1, 3, 7])
    assert cache.length == start + 4
    nxt = rt.forward(torch.tensor([[4]]), cache).logits
    ref = rt.new_cache(64)
    ref_logits = rt.forward(torch.cat([prompt, torch.tensor([[root, 5, 7, 11, 4]])], dim=1), ref).logits[:, -1:]
    assert torch.allclose(nxt, ref_logits, atol=1e-5)


def test_cache_bounds_are_checked():
    target, _ = tiny_target(vocab=50, layers=1)
    cache = target.runtime.new_cache(8)
    target.runtime.forward(torch.zeros(1, 6, dtype=torch.long), cache)
    with pytest.raises(ValueError):
        cache.rollback(7)
    with pytest.raises(RuntimeError, match="overflow"):
        target.runtime.forward(torch.zeros(1, 3, dtype=torch.long), cache)
