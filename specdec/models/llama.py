"""Native runtime for the Llama family (Llama, SmolLM2, Qwen2 / 2.5 with qkv bias, Mistral) in plain PyTorch.

Weights use Hugging Face names; q/k/v and gate/up projections are fused at load time so a layer is five
matrix multiplications (`specdec.models.linear.Linear`, or `specdec.models.quant.Q4Linear` with 4-bit weights
when quant="q4"). Attention runs over a preallocated `KVCache`; new tokens may carry arbitrary
position ids and a mask among themselves, so a whole token tree is scored in one forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from specdec.errors import ConfigError
from specdec.kv import KVCache
from specdec.models.config import DecoderConfig
from specdec.models.linear import Linear
from specdec.models.quant import DENSE_ROWS, PackedLinear, Q4Linear
from specdec.models.rope import apply_rope, rope_tables
from specdec.models.runtime import ForwardOutput


def _rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    if x.dtype == torch.float32:
        return F.rms_norm(x, weight.shape, weight, eps)   # one fused op; same math as below
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


class LlamaRuntime:
    supports_tree = True

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
        cos, sin = rope_tables(config.head_dim, config.rope_theta, config.rope_scaling, ctx)
        self.cos, self.sin = cast(cos), cast(sin)                              # [context, head_dim]

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

    @torch.inference_mode()
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
        c = self.config
        input_ids = input_ids.to(self.device)                       # callers may hand over CPU tensors
        positions = None if positions is None else positions.to(self.device)
        tree_mask = None if tree_mask is None else tree_mask.to(self.device)
        bsz, t = input_ids.shape
        start = cache.length
        if positions is None:
            positions = torch.arange(start, start + t, device=self.device)
        if start + t > min(self.max_context, cache.capacity) or int(positions.max()) >= self.max_context:
            raise RuntimeError(f"context overflow: {start + t} positions, window {self.max_context}, "
                               f"cache capacity {cache.capacity}")
        cos, sin = self.cos[positions], self.sin[positions]
        exact = self.exact_rows and 1 < t < DENSE_ROWS
        mask = self._row_keys(start, t, tree_mask) if exact else self._attention_mask(start, t, tree_mask)
        x = F.embedding(input_ids, self.embed)                       # [batch, t, hidden]
        out = ForwardOutput(logits=None)
        for i in range(len(self.layers)) if layers is None else layers:
            layer = self.layers[i]
            x = x + self._attention(layer, _rms_norm(x, layer["attn_norm"], c.rms_norm_eps), cache, i, cos, sin, mask)
            h = layer["gate_up"](_rms_norm(x, layer["mlp_norm"], c.rms_norm_eps))
            gate, up = h.chunk(2, dim=-1)
            x = x + layer["down"](F.silu(gate) * up)
            if i in hidden_layers:
                out.hidden[i] = x
        cache.advance(t)
        x = _rms_norm(x, self.final_norm, c.rms_norm_eps)
        if -1 in hidden_layers:
            out.hidden[-1] = x
        if logits == "last":
            out.logits = self.lm_head(x[:, -1:])
        elif logits == "all":
            out.logits = self.lm_head(x)                             # [batch, t, vocab]
        return out

    def _attention_mask(self, start: int, t: int, tree_mask: Tensor | None) -> Tensor | None:
        """Bool [t, start + t] (True = may attend), or None when every new token sees everything (t == 1)."""
        if t == 1 and tree_mask is None:
            return None
        new = tree_mask if tree_mask is not None else torch.ones(t, t, dtype=torch.bool, device=self.device).tril()
        past = torch.ones(t, start, dtype=torch.bool, device=self.device)
        return torch.cat([past, new.to(self.device)], dim=1)

    def _attention(self, layer, x: Tensor, cache: KVCache, i: int, cos: Tensor, sin: Tensor,
                   mask: Tensor | list | None) -> Tensor:
        """mask: the bool mask of _attention_mask, or (exact rows) the list of _row_keys."""
        c = self.config
        bsz, t, _ = x.shape
        h, kvh = c.num_heads, c.num_kv_heads
        qkv = layer["qkv"](x).view(bsz, t, h + 2 * kvh, c.head_dim).transpose(1, 2)
        qk = apply_rope(qkv[:, :h + kvh], cos, sin)                  # q and k heads rotated together
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
        o = o.reshape(bsz, c.num_heads, t, c.head_dim).transpose(1, 2).reshape(bsz, t, c.num_heads * c.head_dim)
        return layer["o"](o)

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
