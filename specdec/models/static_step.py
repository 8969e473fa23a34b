"""A fixed-shape pass of the native runtime for one sequence's few new tokens, for CUDA graphs.

A graph replays the same kernels on the same buffers, so nothing in the pass may depend on host values: the
cache position, the rows' positions and their tree mask come in as device tensors, the keys and values are
written with `index_copy_` at those positions, and attention covers the cache's whole capacity under a mask
built on the device (keys before the position, plus each row's tree ancestors among the new rows). The rows are
padded to a bucket (1, 2, 4, ..., the largest allowed); a padding row attends to the past and itself, writes
its key and value past the rows (where the next pass overwrites them) and its logits are dropped.

On CUDA each (bucket, cache buffer, slot) is captured once into a `torch.cuda.CUDAGraph`, after a warm-up on a
side stream, and replayed; on any other device the same function runs eagerly, which is how its arithmetic is
tested against the dynamic pass (`LlamaRuntime.forward_batch`). The runtime uses it for a pass of one segment
that asks for all its logits (vanilla steps, chain and tree verification, with the hidden states a feature-level
head reads); every other pass, and any that would not fit the cache with its padding, takes the dynamic path.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor

from specdec.kv import KVCache
from specdec.models.rope import apply_rope

DEFAULT_BUCKETS = (1, 2, 4, 8, 16, 32)
MAX_POOLS = 2          # cache buffers whose captured graphs are kept
CAPACITY_STEP = 256    # reused cache buffers hold a multiple of this many positions


class StaticStep:
    def __init__(self, runtime, buckets: tuple[int, ...] = DEFAULT_BUCKETS):
        if not buckets or any(not isinstance(b, int) or b < 1 for b in buckets):
            raise ValueError(f"buckets={buckets!r} is invalid; accepted: positive integers")
        self.rt, self.buckets = runtime, tuple(sorted(set(buckets)))
        self.graph = runtime.device.type == "cuda"
        self._captured: dict[tuple, _Captured] = {}
        self._buffers: dict[tuple[int, int], tuple[KVCache, weakref.WeakSet]] = {}   # (capacity, slots) -> buffer
        self.replays = 0                                     # passes served (captured or eager), for tests and logs

    def slots(self, capacity: int, count: int) -> list[KVCache]:
        """`count` slots of at least `capacity` positions, from a buffer kept for reuse: each `generate` call asks
        for slots of its own, and a graph is captured per buffer, so a new buffer per request would capture
        again on every request. The capacity is rounded up to a multiple of CAPACITY_STEP (within the context
        window) so that requests of different lengths share a buffer. A buffer whose earlier slots are still
        alive (another engine decoding) is not handed out again: a new one is made."""
        cap = max(capacity, min(self.rt.max_context, -(-capacity // CAPACITY_STEP) * CAPACITY_STEP))
        kept = self._buffers.get((cap, count))
        if kept is None or len(kept[1]):
            kept = (self.rt.new_cache(cap, batch=count), weakref.WeakSet())
            self._buffers.pop((cap, count), None)
            self._buffers[(cap, count)] = kept
            while len(self._buffers) > MAX_POOLS:                      # the least recently made goes
                del self._buffers[next(iter(self._buffers))]
        pool, handed = kept
        views = [pool.slot(i) for i in range(count)]
        handed.update(views)
        return views

    def bucket(self, rows: int) -> int | None:
        return next((b for b in self.buckets if b >= rows), None)

    def fits(self, segment, cache: KVCache) -> bool:
        """Whether this pass can take the segment: one sequence, rows within a bucket, room for the padding."""
        b = self.bucket(segment.rows)
        return (b is not None and segment.input_ids.shape[0] == 1 and segment.logits == "all"
                and cache.length + b <= min(cache.capacity, self.rt.max_context))

    def __call__(self, segment, hidden_layers: tuple[int, ...] = ()) -> tuple[Tensor, dict[int, Tensor]]:
        """Score the segment's rows after its cache; advance the cache by its rows. -> (logits [1, rows, vocab],
        {layer: hidden rows [1, rows, hidden]} for hidden_layers, -1 the final normed state)."""
        cache, rows = segment.cache, segment.rows
        pool, slot = (cache.pool, cache.index) if cache.pool is not None else (cache, 0)
        b = self.bucket(rows)
        start = cache.length
        # The inputs are built where they already are (the host for a chain, no read back from the device) and
        # copied over once each: few kernel launches outside the graph.
        ids = torch.zeros(1, b, dtype=torch.long)
        ids[:, :rows] = segment.input_ids.cpu()
        given = segment.positions                            # a tree's positions and mask may be on the device
        pos = torch.arange(start, start + b, device="cpu" if given is None else given.device)
        if given is not None:
            pos[:rows] = given
        mask = segment.tree_mask
        tree = torch.eye(b, dtype=torch.bool, device="cpu" if mask is None else mask.device)
        tree[:rows, :rows] = torch.ones(rows, rows, dtype=torch.bool).tril() if mask is None else mask
        inputs = tuple(t.to(self.rt.device) for t in (ids, pos, torch.tensor([start]), tree))
        self.replays += 1
        if not self.graph:
            logits, hidden = _static_pass(self.rt, pool, slot, hidden_layers, *inputs)
        else:
            key = (b, id(pool.k), slot, hidden_layers)
            if key not in self._captured:
                self._forget_old_pools(id(pool.k))
                self._captured[key] = _Captured(self.rt, pool, slot, hidden_layers, inputs)
            logits, hidden = self._captured[key].replay(inputs)
        cache.advance(rows)
        return logits[:, :rows], {k: v[:, :rows] for k, v in hidden.items()}

    def _forget_old_pools(self, current: int) -> None:
        """A graph keeps its cache buffer alive: keep the graphs of the newest MAX_POOLS buffers only (each
        `generate` call allocates a buffer of its own)."""
        pools = list(dict.fromkeys(key[1] for key in self._captured))
        if current not in pools and len(pools) >= MAX_POOLS:
            for key in [k for k in self._captured if k[1] in pools[:len(pools) - MAX_POOLS + 1]]:
                del self._captured[key]


class _Captured:
    """One bucket's pass captured on one cache buffer and slot: static input buffers, the graph, its output."""

    def __init__(self, rt, pool: KVCache, slot: int, hidden_layers: tuple[int, ...], inputs: tuple[Tensor, ...]):
        self.pool = pool              # the graph writes into its buffers: they must outlive it (and keep their id)
        self.inputs = tuple(t.clone() for t in inputs)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():          # warm-up: allocations and kernel choice
            for _ in range(2):
                _static_pass(rt, pool, slot, hidden_layers, *self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.logits, self.hidden = _static_pass(rt, pool, slot, hidden_layers, *self.inputs)

    def replay(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, dict[int, Tensor]]:
        for buf, t in zip(self.inputs, inputs):
            buf.copy_(t)
        self.graph.replay()
        # the next replay rewrites the output buffers
        return self.logits.clone(), {k: v.clone() for k, v in self.hidden.items()}


@torch.inference_mode()
def _static_pass(rt, pool: KVCache, slot: int, hidden_layers: tuple[int, ...], ids: Tensor, pos: Tensor,
                 start: Tensor, tree: Tensor) -> tuple[Tensor, dict[int, Tensor]]:
    """The pass on fixed shapes: ids [1, b], pos [b], start [1] (cached positions before the rows), tree [b, b]
    bool -> (logits [1, b, vocab], {layer: [1, b, hidden]}). Writes the rows' keys and values into slot `slot`
    of `pool`."""
    from specdec.models.llama import _layer_rest, _project, _rms_norm    # the runtime's own layer pieces

    c = rt.config
    b, cap = ids.shape[1], pool.capacity
    h, kvh, d = c.num_heads, c.num_kv_heads, c.head_dim
    group = h // kvh
    rel = torch.arange(cap, device=ids.device) - start                       # [cap] key position - first row's
    new = (rel >= 0) & (rel < b)
    mask = (rel < 0).unsqueeze(0) | (new.unsqueeze(0) & tree[:, rel.clamp(0, b - 1)])   # [b, cap]
    mask = mask.repeat(group, 1)                                             # query heads of a KV head as rows
    at = start + torch.arange(b, device=ids.device)                          # [b] where the rows' keys go
    cos, sin = rt.cos[pos], rt.sin[pos]                                      # [b, d]
    x = F.embedding(ids, rt.embed)                                           # [1, b, hidden]
    hidden: dict[int, Tensor] = {}
    for i, layer in enumerate(rt.layers):
        qkv = _project(layer["qkv"], _rms_norm(x, layer["attn_norm"], c.rms_norm_eps), None)
        qkv = qkv.view(1, b, h + 2 * kvh, d).transpose(1, 2)                # [1, heads + 2 kv_heads, b, d]
        qk = apply_rope(qkv[:, :h + kvh], cos, sin)
        q, k, v = qk[:, :h], qk[:, h:], qkv[:, h + kvh:]
        keys, values = pool.k[i, slot], pool.v[i, slot]                      # [kv_heads, cap, d] views
        keys.index_copy_(1, at, k[0])
        values.index_copy_(1, at, v[0])
        o = F.scaled_dot_product_attention(q.reshape(1, kvh, group * b, d), keys.unsqueeze(0),
                                           values.unsqueeze(0), attn_mask=mask)
        o = o.reshape(1, h, b, d).transpose(1, 2).reshape(1, b, h * d)
        x = _layer_rest(layer, x, o, c.rms_norm_eps, None)
        if i in hidden_layers:
            hidden[i] = x
    x = _rms_norm(x, rt.final_norm, c.rms_norm_eps)
    if -1 in hidden_layers:
        hidden[-1] = x
    return rt.lm_head(x), hidden                                             # [1, b, vocab]
