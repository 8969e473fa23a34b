"""Read-only views of a loaded native target's weights in Hugging Face layout (for initialising heads)."""

from __future__ import annotations

from torch import Tensor

from specdec.errors import ConfigError


def _native(target):
    rt = target.runtime
    if not hasattr(rt, "layers") or not hasattr(rt, "embed"):
        raise ConfigError(f"target {target.name!r} runs through the transformers adapter; trained drafters need a "
                          f"native target (Llama, Qwen2, Mistral)")
    return rt


def embedding(target) -> Tensor:                      # [vocab, hidden]
    return _native(target).embed


def lm_head_rows(target, token_ids: Tensor) -> Tensor:   # [len(token_ids), hidden]
    return _native(target).lm_head.weight[:, token_ids].t().contiguous()   # Linear stores [in, out]


def layer_state(target, i: int) -> dict[str, Tensor]:
    """Layer i of the target in HF names without the 'model.layers.{i}.' prefix (q/k/v and gate/up split)."""
    rt = _native(target)
    c, layer = rt.config, rt.layers[i]
    qkv = layer["qkv"].weight.t()                     # [(h + 2 kvh) * d, hidden]
    q, k, v = qkv.split([c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim, c.num_kv_heads * c.head_dim])
    gate, up = layer["gate_up"].weight.t().chunk(2)
    return {"input_layernorm.weight": layer["attn_norm"], "self_attn.q_proj.weight": q,
            "self_attn.k_proj.weight": k, "self_attn.v_proj.weight": v,
            "self_attn.o_proj.weight": layer["o"].weight.t(),
            "post_attention_layernorm.weight": layer["mlp_norm"],
            "mlp.gate_proj.weight": gate, "mlp.up_proj.weight": up, "mlp.down_proj.weight": layer["down"].weight.t()}


def final_norm(target) -> Tensor:
    return _native(target).final_norm


__all__ = ["embedding", "final_norm", "layer_state", "lm_head_rows"]
