"""Native runtime for the Llama family (Llama, SmolLM2, Qwen2 / 2.5 with qkv bias, Mistral) in plain PyTorch.

Weights use Hugging Face names; q/k/v and gate/up projections are fused at load time so a layer is five
matrix multiplications (`specdec.models.linear.Linear`, or `specdec.models.quant.Q4Linear` with 4-bit weights
when quant="q4"). Attention runs over a preallocated `KVCache`; new tokens may carry arbitrary
position ids and a mask among themselves, so a whole token tree is scored in one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from specdec.errors import ConfigError
from specdec.kv import KVCache
from specdec.models.config import DecoderConfig
from specdec.models.linear import Linear
from specdec.models.quant import DENSE_ROWS, PackedLinear, Q4Linear
from specdec.models.rope import apply_rope, rope_tables
from specdec.models.runtime import ForwardOutput, Segment


@dataclass
class _Plan:
    """A segment's place in a batched pass: rows lo..hi of the pass, rotary tables, attention mask."""
    lo: int
    hi: int
    cos: Tensor                    # [t, head_dim]
    sin: Tensor                    # [t, head_dim]
    mask: Tensor | list | None     # _attention_mask's bool [t, start + t], or _row_keys' list (exact rows)
    exact: bool                    # q4: rows computed by the row-exact kernels


@dataclass
class _Shared:
    """Short segments of one pool whose attention runs together (`_shared_attention`): rotary tables and the cache
    write in one op for all their rows, then one attention call per segment over exactly its own keys."""
    members: list[int]        # segment indices
    rows: Tensor              # [n] the members' rows in the pass, in order
    slot: Tensor              # [n] each row's pool slot
    at: Tensor                # [n] each row's cache position (where its key and value go)
    cos: Tensor               # [n, head_dim]
    sin: Tensor               # [n, head_dim]
    pool: KVCache
    calls: list[tuple[int, int, int, int, Tensor | None]]   # per member: slot, first row, rows, keys, mask


SHARED_ROWS = 16   # segments of at most this many rows share attention calls; longer ones attend alone


def _place(plans: list[_Plan]) -> list[_Plan]:
    at = 0
    for p in plans:
        p.lo, p.hi = at, at + p.hi
        at = p.hi
    return plans


def _exact_runs(plans: list[_Plan]) -> list[tuple[int, int, bool]]:
    """Consecutive row ranges of the pass that share exactness (q4: one kernel call per range)."""
    runs: list[tuple[int, int, bool]] = []
    for p in plans:
        if runs and runs[-1][2] == p.exact:
            runs[-1] = (runs[-1][0], p.hi, p.exact)
        else:
            runs.append((p.lo, p.hi, p.exact))
    return runs


def _project(linear, x: Tensor, runs: list[tuple[int, int, bool]] | None) -> Tensor:
    """linear(x) for x [batch, N, in]; with q4 runs, each run through the kernels its exactness asks for."""
    if runs is None:
        return linear(x)
    if len(runs) == 1:
        return linear(x, exact=runs[0][2])
    return torch.cat([linear(x[:, lo:hi], exact=exact) for lo, hi, exact in runs], dim=1)


def _rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    if x.dtype == torch.float32:
        return F.rms_norm(x, weight.shape, weight, eps)   # one fused op; same math as below
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def _layer_rest(layer: dict, x: Tensor, o: Tensor, eps: float, runs) -> Tensor:
    """A decoder layer after its attention o [batch, N, heads * head_dim]: the output projection and the MLP,
    each added to the residual stream x."""
    x = x + _project(layer["o"], o, runs)
    h = _project(layer["gate_up"], _rms_norm(x, layer["mlp_norm"], eps), runs)
    gate, up = h.chunk(2, dim=-1)
    return x + _project(layer["down"], F.silu(gate) * up, runs)


class LlamaRuntime:
    supports_tree = True
    supports_batch = True

    def __init__(self, config: DecoderConfig, state: dict[str, Tensor], *, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu", quant: str | None = None):
        """quant=None: dense weights in `dtype`. quant="q4" (CPU, float32 dtype): projections in 4 bits, the LM head
        prepacked for oneDNN (specdec.models.quant); activations, norms, attention and the KV cache stay float32."""
        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype
        self.quant = quant
        self.exact_rows = quant is not None   # new tokens attend one by one, as in single-token decoding
        if quant not in (None, "q4"):
            raise ConfigError(f"quant={quant!r} is unknown; accepted: None, 'q4'")
        if quant and (self.device.type != "cpu" or dtype != torch.float32):
            raise ConfigError(f"dtype='q4' runs on the CPU only (got device {self.device}); accepted on "
                              f"{self.device.type}: float32, bfloat16, float16")
        self.vocab_size = config.vocab_size
        self.num_layers = config.num_layers
        ctx = config.max_context
        if config.sliding_window:
            ctx = min(ctx, config.sliding_window)   # beyond the window the model would need windowed attention
        self.max_context = ctx
        cast = lambda t: t.to(device=self.device, dtype=dtype).contiguous()
        self.embed = cast(state["model.embed_tokens.weight"])                 # [vocab, hidden]
        head = state.get("lm_head.weight")
        tied = head is None or config.tie_word_embeddings
        lm = self.embed if tied else cast(head)
        self.lm_head = PackedLinear(lm, torch.float32, keep=True) if quant else Linear(lm)
        self.final_norm = cast(state["model.norm.weight"])
        self.layers = [self._layer(state, i, cast) for i in range(config.num_layers)]
        packed = bool(self.layers) and getattr(self.layers[0]["qkv"], "packed", None) is not None
        self.kernels = "q4" if quant else "onednn" if packed else "matmul"   # which projection kernels run
        self.attention = "per-request"     # a batched pass's short segments: one exact call each (_shared_attention)
        cos, sin = rope_tables(config.head_dim, config.rope_theta, config.rope_scaling, ctx)
        self.cos, self.sin = cast(cos), cast(sin)                              # [context, head_dim]
        self.static = None                 # a StaticStep once use_static_step() is called (CUDA graphs)

    def use_static_step(self, buckets: tuple[int, ...] | None = None) -> None:
        """Score a pass of one sequence's few new tokens through fixed-shape kernels (specdec/models/static_step.py):
        on CUDA captured as CUDA graphs and replayed. Dense weights only."""
        from specdec.models.static_step import DEFAULT_BUCKETS, StaticStep
        if self.quant:
            raise ConfigError("the static step (CUDA graphs) runs dense weights only; accepted: float32, bfloat16, "
                              "float16")
        self.static = StaticStep(self, buckets or DEFAULT_BUCKETS)

    def _layer(self, state: dict[str, Tensor], i: int, cast) -> dict[str, Tensor]:
        p = f"model.layers.{i}."
        a = p + "self_attn."

        def proj(name: str, w: Tensor, b: Tensor | None = None):
            if self.quant:
                return Q4Linear(w, None if b is None else cast(b), name=f"layer {i} {name}")
            return Linear(cast(w), None if b is None else cast(b))

        layer = {
            "attn_norm": cast(state[p + "input_layernorm.weight"]),
            "qkv": proj("qkv", torch.cat([state[a + n + "_proj.weight"] for n in "qkv"]),   # [(h + 2 kvh) * d, hidden]
                        torch.cat([state[a + n + "_proj.bias"] for n in "qkv"]) if a + "q_proj.bias" in state else None),
            "o": proj("o_proj", state[a + "o_proj.weight"]),
            "mlp_norm": cast(state[p + "post_attention_layernorm.weight"]),
            "gate_up": proj("gate_up", torch.cat([state[p + "mlp.gate_proj.weight"], state[p + "mlp.up_proj.weight"]])),
            "down": proj("down_proj", state[p + "mlp.down_proj.weight"]),
        }
        return layer

    def new_cache(self, capacity: int, batch: int = 1) -> KVCache:
        c = self.config
        return KVCache(c.num_layers, c.num_kv_heads, c.head_dim, capacity, batch=batch, dtype=self.dtype,
                       device=self.device)

    def new_slots(self, capacity: int, count: int) -> list[KVCache]:
        if self.static is not None:                  # graphs are captured per buffer: reuse the buffers
            return self.static.slots(capacity, count)
        pool = self.new_cache(capacity, batch=count)
        return [pool.slot(i) for i in range(count)]

    def forward(self, input_ids: Tensor, cache: KVCache, *, positions: Tensor | None = None,
                tree_mask: Tensor | None = None, logits: str = "all",
                hidden_layers: tuple[int, ...] = (), layers: tuple[int, ...] | None = None) -> ForwardOutput:
        """Score input_ids [batch, t] placed after the cache's `length` positions.

        positions [t]: position ids (default: length, length+1, ...). tree_mask [t, t] bool: which new tokens
        each new token may attend to (default: causal). logits: "all", "last" or "none". hidden_layers:
        layer indices whose output (residual stream) to return; -1 means the final normed hidden state.
        layers: run only these layers (ascending; self-speculation); the others neither run nor write the cache,
        so their cache slots for these positions are stale until a full pass overwrites them.
        """
        segment = Segment(input_ids, cache, positions, tree_mask, logits)
        return self.forward_batch([segment], hidden_layers=hidden_layers, layers=layers)[0]

    @torch.inference_mode()
    def forward_batch(self, segments: list[Segment], *, hidden_layers: tuple[int, ...] = (),
                      layers: tuple[int, ...] | None = None) -> list[ForwardOutput]:
        """Score several sequences' new tokens in one pass, each after its own cache (see `forward` for the
        arguments of a segment). Projections and the MLP run once over the rows of every segment; attention runs
        per segment against its own cache. In q4, a segment of fewer than DENSE_ROWS rows stays on the row-exact
        kernels however many rows the pass has, so a request's logits do not depend on the rest of the batch."""
        c = self.config
        if len(segments) > 1 and any(s.input_ids.shape[0] != 1 for s in segments):
            raise ValueError("a pass of several segments takes one sequence per segment (input_ids [1, t])")
        if (self.static is not None and len(segments) == 1 and layers is None
                and isinstance(segments[0].cache, KVCache) and self.static.fits(segments[0], segments[0].cache)):
            logits, hidden = self.static(segments[0], tuple(sorted(hidden_layers)))
            return [ForwardOutput(logits=logits, hidden=hidden)]
        plans = _place([self._plan(s) for s in segments])
        x = F.embedding(torch.cat([s.input_ids.to(self.device) for s in segments], dim=1), self.embed)  # [b, N, hidden]
        runs = _exact_runs(plans) if self.quant else None
        shared = self._share(segments, plans)
        grouped = {j for sh in shared for j in sh.members}
        alone = [j for j in range(len(segments)) if j not in grouped]
        hidden: dict[int, Tensor] = {}
        for i in range(len(self.layers)) if layers is None else layers:
            layer = self.layers[i]
            qkv = _project(layer["qkv"], _rms_norm(x, layer["attn_norm"], c.rms_norm_eps), runs)
            if not shared:
                o = torch.cat([self._attention(qkv[:, p.lo:p.hi], s.cache, i, p) for s, p in zip(segments, plans)], 1)
            else:
                o = torch.empty(1, x.shape[1], c.num_heads * c.head_dim, dtype=x.dtype, device=x.device)
                for sh in shared:
                    o[0, sh.rows] = self._shared_attention(qkv[0, sh.rows], i, sh)
                for j in alone:
                    p = plans[j]
                    o[:, p.lo:p.hi] = self._attention(qkv[:, p.lo:p.hi], segments[j].cache, i, p)
            x = _layer_rest(layer, x, o, c.rms_norm_eps, runs)
            if i in hidden_layers:
                hidden[i] = x
        for s, p in zip(segments, plans):
            s.cache.advance(p.hi - p.lo)
        x = _rms_norm(x, self.final_norm, c.rms_norm_eps)
        if -1 in hidden_layers:
            hidden[-1] = x
        return self._outputs(segments, plans, x, hidden)

    def _plan(self, s: Segment) -> _Plan:
        """Where a segment's rows are, their rotary tables and attention mask; checks the context."""
        t, start = s.rows, s.cache.length
        positions = torch.arange(start, start + t, device=self.device) if s.positions is None \
            else s.positions.to(self.device)
        tree_mask = None if s.tree_mask is None else s.tree_mask.to(self.device)
        if start + t > min(self.max_context, s.cache.capacity) or int(positions.max()) >= self.max_context:
            raise RuntimeError(f"context overflow: {start + t} positions, window {self.max_context}, "
                               f"cache capacity {s.cache.capacity}")
        exact = self.exact_rows and t < DENSE_ROWS
        mask = self._row_keys(start, t, tree_mask) if exact and t > 1 else self._attention_mask(start, t, tree_mask)
        return _Plan(0, t, self.cos[positions], self.sin[positions], mask, exact)

    def _share(self, segments: list[Segment], plans: list[_Plan]) -> list[_Shared]:
        """The short segments (at most SHARED_ROWS rows: decode rows and drafts) of each pool, at least two a
        group (float32 / bfloat16 only: q4 rows attend one by one, `_attention_by_row`)."""
        if self.exact_rows or len(segments) < 2:
            return []
        groups: dict[int, list[int]] = {}
        for j, s in enumerate(segments):
            pool = getattr(s.cache, "pool", None)
            if pool is not None and s.rows <= SHARED_ROWS and s.input_ids.shape[0] == 1:
                groups.setdefault(id(pool), []).append(j)
        return [self._group(segments, plans, members) for members in groups.values() if len(members) > 1]

    def _group(self, segments: list[Segment], plans: list[_Plan], members: list[int]) -> _Shared:
        """Rows, slots, positions and per-segment masks of a group, built once per pass for every layer. A
        segment of one row sees all its keys (no mask, like a lone decode step); wider ones get their [group *
        rows, keys] mask (past keys, then their chain's or tree's own)."""
        dev, group = self.device, self.config.num_heads // self.config.num_kv_heads
        rows, slot, at, calls, first = [], [], [], [], 0
        for j in members:
            s, p = segments[j], plans[j]
            start, b, width = s.cache.length, s.cache.index, s.rows
            mask = None
            if width > 1:
                new = torch.ones(width, width, dtype=torch.bool, device=dev).tril() if s.tree_mask is None \
                    else s.tree_mask.to(dev)
                mask = torch.cat([torch.ones(width, start, dtype=torch.bool, device=dev), new], 1).repeat(group, 1)
            calls.append((b, first, width, start + width, mask))
            rows.append(torch.arange(p.lo, p.hi))
            slot.append(torch.full((width,), b))
            at.append(torch.arange(start, start + width))
            first += width
        cat = lambda parts: torch.cat(parts).to(dev)  # noqa: E731
        return _Shared(members, cat(rows), cat(slot), cat(at), torch.cat([plans[j].cos for j in members]),
                       torch.cat([plans[j].sin for j in members]), segments[members[0]].cache.pool, calls)

    def _shared_attention(self, qkv: Tensor, i: int, sh: _Shared) -> Tensor:
        """Layer i's attention for the group's rows: qkv [n, (heads + 2 kv_heads) * head_dim] -> [n, heads *
        head_dim]. Rotary tables and the cache write run once for all rows, in place in the pool; then each
        segment attends over exactly its slot's keys. One call per segment, not one padded call over the pool's
        slots: a padded call pays for every slot it spans and for the longest one's keys, whoever is in it."""
        c = self.config
        n, h, kvh, d = qkv.shape[0], c.num_heads, c.num_kv_heads, c.head_dim
        group = h // kvh
        qkv = qkv.view(n, h + 2 * kvh, d).transpose(0, 1)                  # [heads + 2 kv_heads, n, d]
        qk = apply_rope(qkv[:h + kvh], sh.cos, sh.sin)
        q, k, v = qk[:h], qk[h:], qkv[h + kvh:]
        sh.pool.k[i, sh.slot, :, sh.at] = k.transpose(0, 1)               # [n, kv_heads, d]
        sh.pool.v[i, sh.slot, :, sh.at] = v.transpose(0, 1)
        keys, values, out = sh.pool.k[i], sh.pool.v[i], []
        for b, lo, width, length, mask in sh.calls:
            qj = q[:, lo:lo + width].reshape(1, kvh, group * width, d)    # the query heads of a KV head as rows
            o = F.scaled_dot_product_attention(qj, keys[b:b + 1, :, :length], values[b:b + 1, :, :length],
                                               attn_mask=mask)
            out.append(o.view(h, width, d).transpose(0, 1).reshape(width, h * d))
        return torch.cat(out)

    def _outputs(self, segments: list[Segment], plans: list[_Plan], x: Tensor,
                 hidden: dict[int, Tensor]) -> list[ForwardOutput]:
        """Each segment's hidden rows and logits; the LM head runs once over the rows that need logits."""
        wanted = {"all": lambda p: range(p.lo, p.hi), "last": lambda p: range(p.hi - 1, p.hi),
                  "none": lambda p: range(0)}
        rows = [list(wanted[s.logits](p)) for s, p in zip(segments, plans)]
        flat = [r for seg in rows for r in seg]
        logits = self.lm_head(x[:, flat]) if flat else None             # [b, rows wanted, vocab]
        outs, at = [], 0
        for seg_rows, p in zip(rows, plans):
            out = ForwardOutput(logits=None if not seg_rows else logits[:, at:at + len(seg_rows)])
            out.hidden = {k: v[:, p.lo:p.hi] for k, v in hidden.items()}
            at += len(seg_rows)
            outs.append(out)
        return outs

    def _attention_mask(self, start: int, t: int, tree_mask: Tensor | None) -> Tensor | None:
        """Bool [t, start + t] (True = may attend), or None when every new token sees everything (t == 1)."""
        if t == 1 and tree_mask is None:
            return None
        new = tree_mask if tree_mask is not None else torch.ones(t, t, dtype=torch.bool, device=self.device).tril()
        past = torch.ones(t, start, dtype=torch.bool, device=self.device)
        return torch.cat([past, new.to(self.device)], dim=1)

    def _attention(self, qkv: Tensor, cache: KVCache, i: int, plan: _Plan) -> Tensor:
        """One segment's attention in layer i: qkv [batch, t, (heads + 2 kv_heads) * head_dim] -> [batch, t,
        heads * head_dim]. plan.mask: the bool mask of _attention_mask, or (exact rows) the list of _row_keys."""
        c = self.config
        bsz, t, _ = qkv.shape
        h, kvh, mask = c.num_heads, c.num_kv_heads, plan.mask
        qkv = qkv.view(bsz, t, h + 2 * kvh, c.head_dim).transpose(1, 2)
        qk = apply_rope(qkv[:, :h + kvh], plan.cos, plan.sin)        # q and k heads rotated together
        q, k, v = qk[:, :h], qk[:, h:], qkv[:, h + kvh:]              # [batch, heads, t, head_dim]
        keys, values = cache.write(i, k, v)                          # [batch, kv_heads, start + t, head_dim]
        group = c.num_heads // c.num_kv_heads
        if isinstance(mask, list):
            o = self._attention_by_row(q, keys, values, mask)
        else:
            # Grouped-query attention without copying K/V: fold the query heads of each KV group into the rows.
            q = q.reshape(bsz, c.num_kv_heads, group * t, c.head_dim)
            m = None if mask is None else mask.repeat(group, 1)       # [group * t, start + t]
            o = F.scaled_dot_product_attention(q, keys, values, attn_mask=m)
        return o.reshape(bsz, c.num_heads, t, c.head_dim).transpose(1, 2).reshape(bsz, t, c.num_heads * c.head_dim)

    def _row_keys(self, start: int, t: int, tree_mask: Tensor | None) -> list[int | Tensor]:
        """For each new token, the keys it may see: an int n (the first n, a chain) or an index tensor (past +
        tree ancestors). Computed once per forward for every layer's _attention_by_row."""
        if tree_mask is None:
            return list(range(start + 1, start + t + 1))
        keys: list[int | Tensor] = []
        for j, row in enumerate(tree_mask.cpu()):
            seen = row.nonzero().squeeze(1)
            if len(seen) == j + 1:                      # every earlier node is an ancestor: a chain so far
                keys.append(start + j + 1)
            else:
                keys.append(torch.cat([torch.arange(start), start + seen]).to(self.device))
        return keys

    def _attention_by_row(self, q: Tensor, keys: Tensor, values: Tensor, row_keys: list[int | Tensor]) -> Tensor:
        """Each new token attends alone, to exactly the keys it may see, in one call shaped like a one-token decode
        step's (no mask): the CPU attention kernel's blocking depends on the query and key lengths, so a masked
        multi-row call does not round like the single-token steps of vanilla decoding. -> [batch, heads, t, d]."""
        c = self.config
        bsz, _, t, d = q.shape
        group = c.num_heads // c.num_kv_heads
        rows = []
        for j, seen in enumerate(row_keys):
            qj = q[:, :, j:j + 1].reshape(bsz, c.num_kv_heads, group, d)
            if isinstance(seen, int):
                kj, vj = keys[:, :, :seen], values[:, :, :seen]
            else:
                kj, vj = keys.index_select(2, seen), values.index_select(2, seen)
            rows.append(F.scaled_dot_product_attention(qj, kj, vj))  # [batch, kv_heads, group, d]
        return torch.stack(rows, dim=3).reshape(bsz, c.num_heads, t, d)
