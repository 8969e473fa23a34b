"""The EAGLE-3 head: its tensors are named and shaped as the engines load them (a table transcribed from their
loader code), and its forward pass equals one written here from the paper's equations, tensor by tensor."""

import math

import torch

from specdec.heads.eagle3 import Eagle3Net
from specdec.heads.layer import LayerShape
from specdec.train.kinds.eagle3 import default_aux_layers

H, HEADS, KV, D, INTER, VD = 32, 4, 2, 8, 48, 11

# vLLM 0.33.0, vllm/model_executor/models/llama_eagle3.py (Eagle3LlamaForCausalLM.load_weights and the modules it
# fills; the same names SGLang 0.5.23 python/sglang/srt/models/llama_eagle3.py reads): name -> shape, in H (hidden),
# nh / nkv (heads), hd (head dim), I (intermediate), Vd (draft vocabulary), n_aux = 3 fused target layers.
ENGINE_TABLE = {
    "fc.weight": (H, 3 * H),                                   # [H, n_aux * H]
    "midlayer.input_layernorm.weight": (H,),                   # RMSNorm on the token embedding
    "midlayer.hidden_norm.weight": (H,),                       # RMSNorm on the fused / fed-back hidden state
    "midlayer.self_attn.q_proj.weight": (HEADS * D, 2 * H),   # [nh * hd, 2H]
    "midlayer.self_attn.k_proj.weight": (KV * D, 2 * H),      # [nkv * hd, 2H]
    "midlayer.self_attn.v_proj.weight": (KV * D, 2 * H),      # [nkv * hd, 2H]
    "midlayer.self_attn.o_proj.weight": (H, HEADS * D),       # [H, nh * hd]
    "midlayer.post_attention_layernorm.weight": (H,),
    "midlayer.mlp.gate_proj.weight": (INTER, H),
    "midlayer.mlp.up_proj.weight": (INTER, H),
    "midlayer.mlp.down_proj.weight": (H, INTER),
    "norm.weight": (H,),                                       # final RMSNorm before lm_head
    "lm_head.weight": (VD, H),                                 # [Vd, H]
}


def net(seed: int = 0) -> Eagle3Net:
    torch.manual_seed(seed)
    n = Eagle3Net(LayerShape(hidden=H, heads=HEADS, kv_heads=KV, head_dim=D, intermediate=INTER, max_context=64),
                  VD, (0, 2, 3))
    with torch.no_grad():                          # random norms too, so a misplaced norm changes the result
        for p in n.parameters():
            p.normal_(1.0 if p.dim() == 1 else 0.0, 0.3)
    return n


def test_tensor_names_and_shapes_are_the_engines():
    state = net().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items() if k != "token_ids"} == ENGINE_TABLE


def test_default_aux_layers_are_the_residual_streams_entering_2_half_and_minus_3():
    """The engines' default (2, L//2, L-3) names the residual stream entering those layers: the outputs of
    layers 1, L//2 - 1, L - 4 in specdec's naming (30 layers: SmolLM2-135M; 28: Qwen2.5-1.5B)."""
    assert default_aux_layers(30) == (1, 14, 26)
    assert tuple(i + 1 for i in default_aux_layers(28)) == (2, 14, 25)


def _rms(x, w, eps=1e-5):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _rope(x, pos, theta=10000.0):
    """Rotary embedding, rotate-half layout: pairs (i, i + d/2) rotated by pos * theta^(-2i/d)."""
    d = x.shape[-1]
    inv = theta ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    ang = pos[:, None].float() * inv[None]
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
    rot = torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos + rot * sin


def reference_logits(w: dict, aux: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """EAGLE-3 (Li et al. 2025) from its equations: h = fc([a_low, a_mid, a_high]); z = [norm_in(e), norm_h(h)];
    causal self-attention over z with rotary positions; r = h + o(attn); g = r + MLP(norm_post(r));
    logits = lm_head(norm(g)). aux [t, 3, H], emb [t, H] -> [t, Vd]."""
    t = emb.shape[0]
    h = aux.reshape(t, -1) @ w["fc.weight"].T
    m = "midlayer."
    z = torch.cat([_rms(emb, w[m + "input_layernorm.weight"]), _rms(h, w[m + "hidden_norm.weight"])], -1)
    q = (z @ w[m + "self_attn.q_proj.weight"].T).view(t, HEADS, D).transpose(0, 1)
    k = (z @ w[m + "self_attn.k_proj.weight"].T).view(t, KV, D).transpose(0, 1)
    v = (z @ w[m + "self_attn.v_proj.weight"].T).view(t, KV, D).transpose(0, 1)
    pos = torch.arange(t)
    q, k = _rope(q, pos), _rope(k, pos)
    k, v = k.repeat_interleave(HEADS // KV, 0), v.repeat_interleave(HEADS // KV, 0)
    scores = q @ k.transpose(1, 2) / math.sqrt(D)
    scores = scores.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
    attn = (torch.softmax(scores, -1) @ v).transpose(0, 1).reshape(t, HEADS * D)
    r = h + attn @ w[m + "self_attn.o_proj.weight"].T
    n = _rms(r, w[m + "post_attention_layernorm.weight"])
    gate, up = n @ w[m + "mlp.gate_proj.weight"].T, n @ w[m + "mlp.up_proj.weight"].T
    g = r + (torch.nn.functional.silu(gate) * up) @ w[m + "mlp.down_proj.weight"].T
    return _rms(g, w["norm.weight"]) @ w["lm_head.weight"].T


def test_forward_equals_the_papers_equations():
    n = net(1)
    g = torch.Generator().manual_seed(2)
    aux, emb = torch.randn(7, 3, H, generator=g), torch.randn(7, H, generator=g)
    with torch.no_grad():
        ours = n.logits(n(n.target_input(None, aux).unsqueeze(0), emb.unsqueeze(0), torch.arange(7)))[0]
    want = reference_logits({k: v.float() for k, v in n.state_dict().items()}, aux, emb)
    assert torch.allclose(ours, want, atol=1e-4, rtol=1e-4), (ours - want).abs().max()
