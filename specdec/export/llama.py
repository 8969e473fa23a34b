"""A `distilled` drafter as a plain Hugging Face Llama directory: the draft model any engine runs beside its target
(vLLM's and SGLang's draft-model speculation, transformers' assisted generation).

specdec's `distilled` drafter is a few Llama layers over the target's own token embedding (not stored with it)
and an output matrix over a reduced draft vocabulary. A Llama checkpoint has neither, so the export writes:

- `model.embed_tokens.weight`: the target's embedding, in the target's dtype (bit for bit: a rounded copy would be
  another embedding than the one the drafter was trained on);
- `lm_head.weight` over the whole target vocabulary: the trained rows for the draft vocabulary, and the target's
  own output rows (where the drafter's rows started from) for the tokens outside it, so the model is a complete
  next-token predictor. A token outside the draft vocabulary can then win where specdec's drafter would not
  propose it; the engines verify every draft, so this changes acceptance, never the output;
- each layer's fused projections split into the Hugging Face names (`q_proj`, `k_proj`, `v_proj`, `gate_proj`,
  `up_proj`), and the target's tokenizer files, so the folder loads on its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from specdec.errors import ConfigError

ENGINES = ("hf", "vllm", "sglang")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "tokenizer.model", "vocab.json", "merges.txt")


def llama_files(config: dict, state: dict[str, torch.Tensor], embed: torch.Tensor, lm_head: torch.Tensor,
                special: dict | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json, tensors) of a `distilled` drafter (its config and state dict) as a LlamaForCausalLM.
    embed, lm_head: the target's embedding and output matrix [vocab, hidden]; special: token ids to copy into the
    config (bos_token_id, eos_token_id, pad_token_id)."""
    s, layers = config["shape"], int(config["num_layers"])
    vocab, hidden = embed.shape
    if lm_head.shape != (vocab, hidden) or hidden != s["hidden"]:
        raise ConfigError(f"target embedding {tuple(embed.shape)} and output matrix {tuple(lm_head.shape)} do not fit "
                          f"the drafter's hidden size {s['hidden']}; accepted: the drafter's own target")
    q, kv, inter = s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"], s["intermediate"]
    token_ids = state["token_ids"].long()
    head = lm_head.detach().to(torch.bfloat16).clone()
    head[token_ids] = state["head.weight"].to(torch.bfloat16)
    tensors = {"model.embed_tokens.weight": embed.detach().clone(), "lm_head.weight": head,
               "model.norm.weight": state["norm.weight"]}
    for i in range(layers):
        src, dst = f"layers.{i}.", f"model.layers.{i}."
        qkv, gate_up = state[src + "qkv.weight"], state[src + "gate_up.weight"]
        tensors.update({
            dst + "input_layernorm.weight": state[src + "attn_norm.weight"],
            dst + "self_attn.q_proj.weight": qkv[:q], dst + "self_attn.k_proj.weight": qkv[q:q + kv],
            dst + "self_attn.v_proj.weight": qkv[q + kv:], dst + "self_attn.o_proj.weight": state[src + "o.weight"],
            dst + "post_attention_layernorm.weight": state[src + "mlp_norm.weight"],
            dst + "mlp.gate_proj.weight": gate_up[:inter], dst + "mlp.up_proj.weight": gate_up[inter:],
            dst + "mlp.down_proj.weight": state[src + "down.weight"]})
    tensors = {k: (v if k == "model.embed_tokens.weight" else v.to(torch.bfloat16)).contiguous()
               for k, v in tensors.items()}
    out = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
           "intermediate_size": inter, "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"],
           "head_dim": s["head_dim"], "num_hidden_layers": layers, "rms_norm_eps": s["rms_eps"],
           "rope_theta": s["rope_theta"], "rope_parameters": {"rope_type": "default", "rope_theta": s["rope_theta"]},
           "max_position_embeddings": s["max_context"], "hidden_act": "silu",
           "vocab_size": vocab, "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
           "torch_dtype": "bfloat16", **{k: v for k, v in (special or {}).items() if v is not None}}
    return out, tensors


def copy_tokenizer(src: str | Path, out: str | Path) -> list[str]:
    """The target's tokenizer files that exist in its Hugging Face directory, copied into `out`."""
    copied = []
    for name in TOKENIZER_FILES:
        f = Path(src) / name
        if f.is_file():
            shutil.copyfile(f, Path(out) / name)
            copied.append(name)
    return copied


def special_ids(hf_dir: str | Path | None) -> dict:
    """bos/eos/pad token ids from the target's config.json (what a draft model's config repeats)."""
    cfg = Path(hf_dir) / "config.json" if hf_dir else None
    if cfg is None or not cfg.is_file():
        return {}
    c = json.loads(cfg.read_text())
    return {k: c.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}


def readme(engine: str, out: str, target: str, speculative_tokens: int) -> str:
    serve = {
        "vllm": (f"vllm serve TARGET --speculative-config '{{\"method\": \"draft_model\", \"model\": \"{out}\", "
                 f"\"num_speculative_tokens\": {speculative_tokens}}}' --tensor-parallel-size N"),
        "sglang": (f"python -m sglang.launch_server --model-path TARGET --speculative-algorithm STANDALONE "
                   f"--speculative-draft-model-path {out} --speculative-num-steps {speculative_tokens} "
                   f"--speculative-eagle-topk 1 --speculative-num-draft-tokens {speculative_tokens + 1} --tp N"),
        "hf": (f"python -c \"from transformers import AutoModelForCausalLM as M; t = M.from_pretrained('TARGET'); "
               f"d = M.from_pretrained('{out}'); ...; t.generate(ids, assistant_model=d)\""),
    }[engine]
    return (f"# Draft model for {target}\n\nA `distilled` drafter written by `specdec export --to {engine}` as a plain "
            f"Hugging Face Llama directory (LlamaForCausalLM; written for vLLM 0.33.0, SGLang 0.5.23 and "
            f"transformers 5).\nTARGET is {target} (its Hugging Face directory); the draft shares its tokenizer "
            f"(copied here) and its token embedding (stored here).\n\nServe it:\n\n```bash\n{serve}\n```\n\n"
            f"Output rows: the trained rows for the drafter's draft vocabulary, the target's own rows for the "
            f"other tokens.\n")
