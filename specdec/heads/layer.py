"""A Llama decoder layer as a trainable module, with the pieces split so a caller can bring its own keys.

`project` -> q, k, v (rotary applied); `attend` -> attention output over any keys/values and mask; `finish` ->
residual + MLP. `forward` chains them over an optional `KVCache` (decoding) or a causal mask (training).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from specdec.models.rope import apply_rope, rope_tables


@dataclass(frozen=True)
class LayerShape:
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    rms_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_context: int = 8192

    @staticmethod
    def of_target(config, **overrides) -> LayerShape:
        """The target's layer shape (a specdec.models.config.DecoderConfig), optionally changed."""
        base = {"hidden": config.hidden_size, "heads": config.num_heads, "kv_heads": config.num_kv_heads,
                    "head_dim": config.head_dim, "intermediate": config.intermediate_size, "rms_eps": config.rms_norm_eps,
                    "rope_theta": config.rope_theta, "max_context": config.max_context}
        base.update(overrides)
        return LayerShape(**base)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


class Rope(nn.Module):
    """cos/sin tables as non-persistent buffers (rebuilt from the shape, never saved)."""

    def __init__(self, shape: LayerShape):
        super().__init__()
        cos, sin = rope_tables(shape.head_dim, shape.rope_theta, None, shape.max_context)
        self.register_buffer("cos", cos, persistent=False)       # [context, head_dim]
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:   # positions [t]
        return self.cos[positions], self.sin[positions]


class DraftLayer(nn.Module):
    def __init__(self, shape: LayerShape):
        super().__init__()
        s = self.shape = shape
        self.attn_norm = RMSNorm(s.hidden, s.rms_eps)
        self.qkv = nn.Linear(s.hidden, (s.heads + 2 * s.kv_heads) * s.head_dim, bias=False)
        self.o = nn.Linear(s.heads * s.head_dim, s.hidden, bias=False)
        self.mlp_norm = RMSNorm(s.hidden, s.rms_eps)
        self.gate_up = nn.Linear(s.hidden, 2 * s.intermediate, bias=False)
        self.down = nn.Linear(s.intermediate, s.hidden, bias=False)

    def project(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x [batch, t, hidden] -> q [batch, heads, t, d], k and v [batch, kv_heads, t, d]."""
        s = self.shape
        b, t, _ = x.shape
        qkv = self.qkv(self.attn_norm(x)).view(b, t, s.heads + 2 * s.kv_heads, s.head_dim).transpose(1, 2)
        qk = apply_rope(qkv[:, :s.heads + s.kv_heads], cos, sin)
        return qk[:, :s.heads], qk[:, s.heads:], qkv[:, s.heads + s.kv_heads:]

    def attend(self, q: Tensor, keys: Tensor, values: Tensor, mask: Tensor | None, causal: bool = False) -> Tensor:
        """q [batch, heads, t, d] over keys/values [batch, kv_heads, s, d]; mask [t, s] bool (True = may attend)."""
        s = self.shape
        b, _, t, d = q.shape
        group = s.heads // s.kv_heads
        keys = keys.repeat_interleave(group, dim=1) if group > 1 else keys
        values = values.repeat_interleave(group, dim=1) if group > 1 else values
        o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=causal and mask is None)
        return o.transpose(1, 2).reshape(b, t, s.heads * d)

    def finish(self, x: Tensor, attn: Tensor) -> Tensor:
        x = x + self.o(attn)
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, *, cache=None, index: int = 0,
                mask: Tensor | None = None, residual: Tensor | None = None) -> Tensor:
        """Without a cache: causal attention over x. With one (a specdec.kv.KVCache): new keys are written at
        cache.length; mask [t, t] (among themselves, all the past visible), [t, cache.length + t] (everything
        spelled out) or None (causal).
        The caller advances the cache once all layers ran. residual: the stream the attention output is added
        to (default x itself; EAGLE-3's midlayer attends over a wider input than its residual stream)."""
        residual = x if residual is None else residual
        q, k, v = self.project(x, cos, sin)
        if cache is None:
            return self.finish(residual, self.attend(q, k, v, mask, causal=mask is None))
        start, t = cache.length, x.shape[1]
        keys, values = cache.write(index, k, v)
        full = mask
        if mask is None and t > 1:
            full = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        if full is not None and full.shape[1] == t:        # new tokens among themselves: all the past is visible
            full = torch.cat([torch.ones(t, start, dtype=torch.bool, device=x.device), full], dim=1)
        return self.finish(residual, self.attend(q, keys, values, full))

    def init_from(self, state: dict[str, Tensor]) -> None:
        """Copy a Hugging Face Llama layer's weights (names without the 'model.layers.{i}.' prefix)."""
        a = "self_attn."
        with torch.no_grad():
            self.attn_norm.weight.copy_(state["input_layernorm.weight"])
            self.qkv.weight.copy_(torch.cat([state[a + n + "_proj.weight"] for n in "qkv"]))
            self.o.weight.copy_(state[a + "o_proj.weight"])
            self.mlp_norm.weight.copy_(state["post_attention_layernorm.weight"])
            self.gate_up.weight.copy_(torch.cat([state["mlp.gate_proj.weight"],
                                                 state["mlp.up_proj.weight"]]))
            self.down.weight.copy_(state["mlp.down_proj.weight"])
