"""EAGLE-3 head (Li et al. 2025), with the modules, names and norms of the Llama EAGLE-3 head that vLLM and SGLang
load, so its state dict is theirs without renaming (specdec/export writes their files).

At a committed position p the target's residual streams of three layers (low, middle, high; `aux_layers`, each
the *output* of that layer as specdec's `hidden_layers` name it) are concatenated and projected by `fc`
(3 x hidden -> hidden) into the fused feature h_p. One decoder layer ("midlayer") reads, per entry,

    a = [input_layernorm(e(x_{p+1})), hidden_norm(h_p)]          (2 x hidden: the attention's input)
    r = h_p + o_proj(attention(q_proj(a), k_proj(a), v_proj(a)))  (the residual stream is h_p, not a)
    g = r + down_proj(silu(gate_proj(n)) * up_proj(n)),  n = post_attention_layernorm(r)

and the draft logits for x_{p+2} are lm_head(norm(g)) over the draft vocabulary. Deeper draft steps feed g (before
`norm`) back in place of h. The draft vocabulary is `token_ids` (draft index -> target id; the engines store it as
`d2t`, the offsets token_ids - arange, and `t2d`, a mask over the target vocabulary). The token embedding e is the
target's own (the engines share it too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from specdec.heads.layer import DraftLayer, LayerShape, RMSNorm, Rope


class _Attention(nn.Module):
    def __init__(self, s: LayerShape):
        super().__init__()
        self.q_proj = nn.Linear(2 * s.hidden, s.heads * s.head_dim, bias=False)
        self.k_proj = nn.Linear(2 * s.hidden, s.kv_heads * s.head_dim, bias=False)
        self.v_proj = nn.Linear(2 * s.hidden, s.kv_heads * s.head_dim, bias=False)
        self.o_proj = nn.Linear(s.heads * s.head_dim, s.hidden, bias=False)


class _MLP(nn.Module):
    def __init__(self, s: LayerShape):
        super().__init__()
        self.gate_proj = nn.Linear(s.hidden, s.intermediate, bias=False)
        self.up_proj = nn.Linear(s.hidden, s.intermediate, bias=False)
        self.down_proj = nn.Linear(s.intermediate, s.hidden, bias=False)


class Eagle3Layer(DraftLayer):
    """The midlayer: a Llama decoder layer whose attention reads [normed embedding, normed feature] (2 x hidden)
    and whose residual stream is the feature. `project` takes that 2 x hidden input; `finish` the residual."""

    def __init__(self, shape: LayerShape):
        nn.Module.__init__(self)
        s = self.shape = shape
        self.input_layernorm = RMSNorm(s.hidden, s.rms_eps)
        self.hidden_norm = RMSNorm(s.hidden, s.rms_eps)
        self.self_attn = _Attention(s)
        self.post_attention_layernorm = RMSNorm(s.hidden, s.rms_eps)
        self.mlp = _MLP(s)

    def entry(self, embeds: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """(attention input [.., 2 x hidden], residual [.., hidden])."""
        return torch.cat([self.input_layernorm(embeds), self.hidden_norm(hidden)], dim=-1), hidden

    def project(self, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        from specdec.models.rope import apply_rope
        s, a = self.shape, self.self_attn
        b, t, _ = x.shape
        q = a.q_proj(x).view(b, t, s.heads, s.head_dim).transpose(1, 2)
        k = a.k_proj(x).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        v = a.v_proj(x).view(b, t, s.kv_heads, s.head_dim).transpose(1, 2)
        qk = apply_rope(torch.cat([q, k], dim=1), cos, sin)
        return qk[:, :s.heads], qk[:, s.heads:], v

    def finish(self, residual: Tensor, attn: Tensor) -> Tensor:
        x = residual + self.self_attn.o_proj(attn)
        n = self.post_attention_layernorm(x)
        return x + self.mlp.down_proj(F.silu(self.mlp.gate_proj(n)) * self.mlp.up_proj(n))


class Eagle3Net(nn.Module):
    def __init__(self, shape: LayerShape, draft_vocab: int, aux_layers: tuple[int, ...]):
        super().__init__()
        self.shape = shape
        self.aux_layers = tuple(int(i) for i in aux_layers)
        self.fc = nn.Linear(len(self.aux_layers) * shape.hidden, shape.hidden, bias=False)
        self.midlayer = Eagle3Layer(shape)
        self.norm = RMSNorm(shape.hidden, shape.rms_eps)
        self.lm_head = nn.Linear(shape.hidden, draft_vocab, bias=False)
        self.rope = Rope(shape)
        self.register_buffer("token_ids", torch.zeros(draft_vocab, dtype=torch.long))  # draft index -> token id

    # the interface the EAGLE drafter and objective use (specdec/drafters/eagle.py, specdec/train/eagle.py)
    @property
    def layer(self) -> Eagle3Layer:
        return self.midlayer

    @property
    def feature_layers(self) -> tuple[int, ...]:
        return self.aux_layers

    @property
    def extra_layers(self) -> tuple[int, ...]:
        return self.aux_layers

    def target_input(self, final: Tensor | None, extras: Tensor) -> Tensor:
        """The fused feature h for committed positions: extras [..., aux layers, hidden] (final is not read)."""
        return self.fc(extras.flatten(-2).to(self.norm.weight.dtype))        # (fc may be a 4-bit module)

    def committed_input(self, hidden: dict[int, Tensor]) -> Tensor | None:
        if any(i not in hidden for i in self.aux_layers):
            return None
        return self.target_input(None, torch.stack([hidden[i] for i in self.aux_layers], dim=-2))

    def entry(self, embeds: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        return self.midlayer.entry(embeds, hidden)

    def forward(self, features: Tensor, embeds: Tensor, positions: Tensor, *, cache=None,
                mask: Tensor | None = None) -> Tensor:
        """features (h, or a fed-back g) and embeds [batch, t, hidden]; positions [t] -> g [batch, t, hidden]."""
        x, residual = self.entry(embeds, features)
        cos, sin = self.rope(positions)
        g = self.midlayer(x, cos, sin, cache=cache, mask=mask, residual=residual)
        if cache is not None:
            cache.advance(x.shape[1])
        return g

    def logits(self, g: Tensor) -> Tensor:           # [..., hidden] -> [..., draft vocab]
        return self.lm_head(self.norm(g))

    def init_from_target(self, target, token_ids: Tensor) -> None:
        """Start as the target's logit lens on the highest aux layer: fc passes that layer through, norm and
        lm_head are the target's final norm and LM head rows; the midlayer adds little at first."""
        from specdec.heads.target import lm_head_rows
        h = self.shape.hidden
        with torch.no_grad():
            self.token_ids.copy_(token_ids)
            self.lm_head.weight.copy_(lm_head_rows(target, token_ids))
            self.norm.weight.copy_(target.runtime.final_norm.float())
            self.fc.weight.zero_()
            self.fc.weight[:, -h:].copy_(torch.eye(h))
            self.midlayer.self_attn.o_proj.weight.mul_(0.1)
            self.midlayer.mlp.down_proj.weight.mul_(0.1)
