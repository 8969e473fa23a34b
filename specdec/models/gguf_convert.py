"""Turn a .gguf file (Llama family) into a Hugging Face style model directory with float32 weights.

GGUF is parsed as data with the `gguf` library (never executed). llama.cpp stores the q and k projections of
`llama` models with rows permuted for its interleaved RoPE; we undo that so the weights match the
rotate-half layout of Hugging Face checkpoints.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from specdec.errors import ModelFileError

GGUF_ARCHS = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "mistral": "MistralForCausalLM"}
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_TOP_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
              "output.weight": "lm_head.weight"}


def _open(path: Path):
    from gguf import GGUFReader
    try:
        return GGUFReader(str(path))
    except Exception as e:  # the gguf library raises assorted errors for bad files
        raise ModelFileError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e}); "
                             f"expected a complete .gguf model file") from None


def _field(reader, key: str, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def _unpermute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Inverse of llama.cpp's q/k row permutation (interleaved pairs -> two halves per head)."""
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_hf_config(reader, path: Path) -> dict:
    arch = _field(reader, "general.architecture")
    if arch not in GGUF_ARCHS:
        raise ModelFileError(f"{path} holds a {arch!r} model; supported GGUF architectures: {sorted(GGUF_ARCHS)}")
    get = lambda k, d=None: _field(reader, f"{arch}.{k}", d)  # noqa: E731
    names = {t.name for t in reader.tensors}
    heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    vocab = int(get("vocab_size", 0)) or len(_field(reader, "tokenizer.ggml.tokens", []))
    cfg = {
        "architectures": [GGUF_ARCHS[arch]], "model_type": arch, "vocab_size": vocab, "hidden_size": hidden,
        "intermediate_size": int(get("feed_forward_length")), "num_hidden_layers": int(get("block_count")),
        "num_attention_heads": heads, "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "head_dim": int(get("attention.key_length", hidden // heads)),
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "max_position_embeddings": int(get("context_length", 2048)),
        "tie_word_embeddings": "output.weight" not in names, "torch_dtype": "float32",
        "bos_token_id": _field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _field(reader, "tokenizer.ggml.eos_token_id"),
    }
    if get("rope.scaling.type") == "linear":
        cfg["rope_scaling"] = {"rope_type": "linear", "factor": float(get("rope.scaling.factor"))}
    return cfg


def gguf_state_dict(reader, cfg: dict) -> dict[str, torch.Tensor]:
    from gguf.quants import dequantize
    state = {}
    permute = cfg["model_type"] == "llama"
    for t in reader.tensors:
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        if t.name in _TOP_NAMES:
            name = _TOP_NAMES[t.name]
        else:
            parts = t.name.split(".", 2)
            if parts[0] != "blk" or parts[2] not in _LAYER_NAMES:
                continue   # e.g. rope_freqs: recomputed from the config
            name = f"model.layers.{parts[1]}.{_LAYER_NAMES[parts[2]]}"
            if permute and parts[2] == "attn_q.weight":
                w = _unpermute(w, cfg["num_attention_heads"])
            elif permute and parts[2] == "attn_k.weight":
                w = _unpermute(w, cfg["num_key_value_heads"])
        state[name] = torch.from_numpy(np.array(w, copy=True))
    return state


def convert_gguf(path: Path, out_dir: Path, quiet: bool = False) -> Path:
    """Write config.json, model.safetensors and the tokenizer for `path` into out_dir (atomically)."""
    import transformers
    reader = _open(path)
    cfg = gguf_hf_config(reader, path)
    if not quiet:
        print(f"converting {path.name} to float weights (once) ...", file=sys.stderr, flush=True)
    try:
        state = gguf_state_dict(reader, cfg)
    except (ValueError, IndexError, KeyError) as e:
        raise ModelFileError(f"{path} has unreadable tensor data ({e}); expected a complete .gguf file") from None
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=".tmp-"))
    try:
        config.save_pretrained(tmp)
        save_file(state, str(tmp / "model.safetensors"))
        tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        tok.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
