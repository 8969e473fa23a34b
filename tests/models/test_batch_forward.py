"""A batched pass (`forward_batch`) scores each request's rows as a pass of that request alone would: every
segment after its own slot of one shared cache, at its own length, with its own chain or tree."""

from __future__ import annotations

import pytest
import torch

from specdec.models.config import DecoderConfig
from specdec.models.llama import LlamaRuntime
from specdec.models.runtime import Segment
from specdec.tree import tree_inputs
from tests.tiny import tiny_target

PARENTS = torch.tensor([-1, 0, 0, 1, -1, 4])


def _requests(vocab: int, seed: int = 1):
    """(prompt, new tokens, tree parents or None) for four requests of different lengths and shapes (a tree's
    new tokens are its root and its nodes, as the engine scores them)."""
    g = torch.Generator().manual_seed(seed)
    ids = lambda n: torch.randint(0, vocab, (n,), generator=g)  # noqa: E731
    return [(ids(7), ids(1), None), (ids(30), ids(4), None), (ids(3), ids(7), PARENTS), (ids(90), ids(70), None)]


def _segment(rt, cache, new: torch.Tensor, parents) -> Segment:
    if parents is None:
        return Segment(new.unsqueeze(0), cache)
    mask, positions = tree_inputs(parents, cache.length)
    return Segment(new.unsqueeze(0), cache, positions, mask)


def _alone(rt, prompt, new, parents) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, hidden rows of layer 0) of the new tokens scored after the prompt in a cache of its own."""
    cache = rt.new_cache(256)
    rt.forward(prompt.unsqueeze(0), cache, logits="none")
    out = rt.forward_batch([_segment(rt, cache, new, parents)], hidden_layers=(0,))[0]
    return out.logits[0], out.hidden[0][0]


def _batched(rt, requests):
    pool = rt.new_cache(256, batch=len(requests))
    slots = [pool.slot(i) for i in range(len(requests))]
    for slot, (prompt, _, _) in zip(slots, requests):
        rt.forward(prompt.unsqueeze(0), slot, logits="none")
    segments = [_segment(rt, slot, new, parents) for slot, (_, new, parents) in zip(slots, requests)]
    outs = rt.forward_batch(segments, hidden_layers=(0,))
    assert [s.length for s in slots] == [len(p) + len(n) for p, n, _ in requests]
    return [(o.logits[0], o.hidden[0][0]) for o in outs]


def test_float32_batched_rows_match_each_request_alone():
    rt = tiny_target(vocab=64, layers=2, hidden=32, heads=4, kv_heads=2, seed=2)[0].runtime
    requests = _requests(64)
    for (logits, hidden), request in zip(_batched(rt, requests), requests):
        ref_logits, ref_hidden = _alone(rt, *request)
        torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(hidden, ref_hidden, rtol=1e-4, atol=1e-5)


def test_q4_batched_rows_equal_each_request_alone_bit_for_bit():
    """q4 decode rows stay on the row-exact kernels even when the pass has more than DENSE_ROWS rows; the
    70-row segment (a prefill chunk) takes the dense path exactly as it does alone."""
    rt = tiny_target(vocab=40, layers=2, hidden=192, heads=3, kv_heads=1, quant="q4", seed=3)[0].runtime
    requests = _requests(40, seed=2)[:3] * 8        # 24 decode segments: more rows than DENSE_ROWS in one pass
    requests.append(_requests(40, seed=2)[3])
    for (logits, hidden), request in zip(_batched(rt, requests), requests):
        ref_logits, ref_hidden = _alone(rt, *request)
        assert torch.equal(logits, ref_logits)
        assert torch.equal(hidden, ref_hidden)


def test_logits_last_and_none_per_segment():
    rt = tiny_target(seed=4)[0].runtime
    pool = rt.new_cache(64, batch=3)
    segs = [Segment(torch.tensor([[1, 2, 3]]), pool.slot(i), logits=kind) for i, kind in
            enumerate(("all", "last", "none"))]
    outs = rt.forward_batch(segs)
    assert outs[0].logits.shape[1] == 3 and outs[1].logits.shape[1] == 1 and outs[2].logits is None
    torch.testing.assert_close(outs[1].logits[0, 0], outs[0].logits[0, 2])


def test_a_slot_is_a_cache_of_its_own():
    rt = tiny_target(seed=5)[0].runtime
    pool = rt.new_cache(32, batch=2)
    a, b = pool.slot(0), pool.slot(1)
    rt.forward(torch.tensor([[1, 2, 3, 4]]), a, logits="none")
    assert (a.length, b.length) == (4, 0)
    assert torch.count_nonzero(pool.k[:, 1]) == 0          # slot 1 untouched
    a.rollback(2)
    assert a.length == 2
    with pytest.raises(IndexError, match="slot 2 is out of range"):
        pool.slot(2)


def test_several_segments_take_one_sequence_each():
    rt = tiny_target(seed=6)[0].runtime
    pool = rt.new_cache(16, batch=2)
    with pytest.raises(ValueError, match="one sequence per segment"):
        rt.forward_batch([Segment(torch.ones(2, 3, dtype=torch.long), pool.slot(0)),
                          Segment(torch.ones(1, 3, dtype=torch.long), pool.slot(1))])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_short_segments_attend_as_one_group_over_scattered_slots(monkeypatch, dtype):
    """Segments of at most SHARED_ROWS rows, whatever their widths, attend as one group over the pool's slots in
    place: used slots out of order with stale and empty slots between them, a tree among chains, one attention
    call per segment over exactly its keys; a long segment attends alone. Each equals its request alone."""
    hf = tiny_target(vocab=64, layers=2, hidden=32, heads=4, kv_heads=2, seed=7)[1]
    rt = LlamaRuntime(DecoderConfig.from_hf(hf.config), hf.state_dict(), dtype=dtype)
    groups, sdpa = [], []
    shared, attend = type(rt)._shared_attention, torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(type(rt), "_shared_attention", lambda self, *a: groups.append(a[-1].members) or shared(self, *a))
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda q, k, *a, **kw: sdpa.append((q.shape[2], k.shape[2])) or attend(q, k, *a, **kw))
    g = torch.Generator().manual_seed(3)
    ids = lambda n: torch.randint(0, 64, (n,), generator=g)  # noqa: E731
    requests = [(ids(7), ids(4), None), (ids(30), ids(4), None), (ids(3), ids(4), torch.tensor([-1, 0, 0])),
                (ids(12), ids(1), None), (ids(5), ids(1), None), (ids(9), ids(2), None), (ids(90), ids(70), None)]
    pool = rt.new_cache(256, batch=9)
    rt.forward(torch.randint(0, 64, (1, 40)), pool.slot(2), logits="none")   # stale keys in a slot nobody uses
    slots = [pool.slot(i) for i in (4, 0, 8, 1, 6, 3, 5)]
    for slot, (prompt, _, _) in zip(slots, requests):
        rt.forward(prompt.unsqueeze(0), slot, logits="none")
    groups.clear(), sdpa.clear()
    outs = rt.forward_batch([_segment(rt, slot, new, parents) for slot, (_, new, parents) in zip(slots, requests)])
    assert groups == [[0, 1, 2, 3, 4, 5]] * 2                # per layer: the six short segments together
    keys = [len(p) + len(n) for p, n, _ in requests]         # each segment's call sees exactly its keys
    queries = [2 * len(n) for _, n, _ in requests]           # 2 query heads per KV head, folded into rows
    assert sdpa == [(q, k) for q, k in zip(queries, keys)] * 2
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    for out, request in zip(outs, requests):
        torch.testing.assert_close(out.logits[0], _alone(rt, *request)[0], **tol)
