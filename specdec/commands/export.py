"""`specdec export DRAFTER_DIR --to ENGINE --out DIR`: a trained drafter in another engine's format.

eagle3 heads: --to vllm, sglang or speculators (specdec/export/eagle3.py). distilled drafters: --to hf, vllm or
sglang, all three a plain Hugging Face Llama directory, the README naming that engine's command
(specdec/export/llama.py). medusa heads: --to vllm (specdec/export/medusa.py). Other kinds are refused, with the
reason."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from specdec.errors import ConfigError


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("drafter", help="a drafter directory written by `specdec train` (kind eagle3 or distilled)")
    p.add_argument("--to", required=True, help="eagle3: vllm, sglang or speculators; distilled: hf, vllm or sglang")
    p.add_argument("--out", required=True, help="output directory (holds only what the engine reads, and a README)")
    p.add_argument("--target", default=None, help="the drafter's target, for the layouts that save the target's "
                                                  "embedding (speculators, distilled) (default: the target named in "
                                                  "the drafter)")
    p.add_argument("--speculative-tokens", type=int, default=3,
                   help="draft tokens per step written into the speculators config and the README's command (default 3)")


UNSUPPORTED = {
    "eagle": "specdec's eagle layer normalises its input (input_layernorm) where vLLM's EAGLE-1 layer, as the EAGLE-1 "
             "reference, skips that norm (vllm/model_executor/models/llama_eagle.py), so its weights would compute "
             "another function there; train an eagle3 head to serve in vLLM or SGLang",
}


def run_export(args) -> int:
    from specdec.heads.io import load_drafter
    if args.speculative_tokens < 1:
        raise ConfigError(f"--speculative-tokens {args.speculative_tokens}; accepted: an integer >= 1")
    cfg = Path(args.drafter) / "config.json"
    if not cfg.is_file():
        raise ConfigError(f"drafter directory {args.drafter!r} has no config.json; accepted: a directory written by "
                          f"`specdec train eagle3` or `specdec train distilled`")
    kind = json.loads(cfg.read_text()).get("kind")
    if kind == "distilled":
        return _export_distilled(args, *load_drafter(args.drafter, "distilled"))
    if kind == "medusa":
        return _export_medusa(args, *load_drafter(args.drafter, "medusa"))
    if kind != "eagle3":
        why = UNSUPPORTED.get(kind, "specdec exports eagle3, distilled and medusa drafters only")
        raise ConfigError(f"{args.drafter!r} holds a {kind!r} drafter, which has no export: {why}; accepted: an "
                          f"eagle3 drafter (--to vllm, sglang or speculators), a distilled one (--to hf, vllm or "
                          f"sglang) or medusa heads (--to vllm)")
    from specdec.export.eagle3 import ENGINES, engine_files, readme, write_engine_dir
    if args.to not in ENGINES:
        raise ConfigError(f"--to {args.to!r} for an eagle3 drafter; accepted: {', '.join(ENGINES)}")
    config, state = load_drafter(args.drafter, "eagle3")
    embed, verifier = None, args.target or config["target"]["name"]
    if args.to == "speculators":
        target = _target(args, config)
        embed = target.runtime.embed.float().cpu()
        verifier = args.target or target.info.get("hf_dir", verifier)   # a directory the library can load offline
    files, tensors = engine_files(config, state, args.to, embed=embed, verifier=verifier,
                                  speculative_tokens=args.speculative_tokens)
    out = write_engine_dir(args.out, files, tensors, readme(args.to, str(Path(args.out).resolve()), verifier,
                                                            list(config["feature_layers"]), args.speculative_tokens))
    print(f"wrote {out}/config.json, model.safetensors, README.md ({args.to} layout)")
    return 0


def _target(args, config: dict):
    """The drafter's target, loaded and checked against the drafter's fingerprint."""
    from specdec.heads.io import check_target
    from specdec.models.load import load_model
    target = load_model(args.target or config["target"]["name"], quiet=True)
    check_target(config, target, args.drafter)
    return target


def _export_distilled(args, config: dict, state: dict) -> int:
    from specdec.export.eagle3 import write_engine_dir
    from specdec.export.llama import ENGINES, copy_tokenizer, llama_files, readme, special_ids
    from specdec.heads.target import embedding, lm_head_rows
    if args.to not in ENGINES:
        raise ConfigError(f"--to {args.to!r} for a distilled drafter; accepted: {', '.join(ENGINES)} (each a plain "
                          f"Hugging Face Llama directory)")
    import torch
    target = _target(args, config)
    hf_dir = target.info.get("hf_dir")
    files, tensors = llama_files(config, state, embedding(target).cpu(),
                                 lm_head_rows(target, torch.arange(target.runtime.vocab_size)).cpu(),
                                 special_ids(hf_dir))
    name = args.target or hf_dir or target.name
    out = write_engine_dir(args.out, files, tensors, readme(args.to, str(Path(args.out).resolve()), name,
                                                            args.speculative_tokens))
    copied = copy_tokenizer(hf_dir, out) if hf_dir else []
    print(f"wrote {out}/config.json, model.safetensors, README.md{''.join(', ' + c for c in copied)} "
          f"(Hugging Face Llama layout for {args.to})")
    return 0


def _export_medusa(args, config: dict, state: dict) -> int:
    from specdec.export.eagle3 import write_engine_dir
    from specdec.export.medusa import medusa_files, readme
    if args.to != "vllm":
        raise ConfigError(f"--to {args.to!r} for medusa heads; accepted: vllm (the Medusa layout written is vLLM's)")
    files, tensors = medusa_files(config, state)
    target = args.target or config["target"]["name"]
    out = write_engine_dir(args.out, files, tensors, readme(str(Path(args.out).resolve()), target,
                                                            int(config["num_heads"])))
    print(f"wrote {out}/config.json, model.safetensors, README.md (vllm Medusa layout)")
    return 0
