"""`specdec export DRAFTER_DIR --to vllm|sglang|speculators --out DIR`: a trained drafter in another engine's format."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from specdec.errors import ConfigError


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("drafter", help="a drafter directory written by `specdec train` (kind eagle3)")
    p.add_argument("--to", required=True, help="vllm, sglang or speculators")
    p.add_argument("--out", required=True, help="output directory (holds only what the engine reads, and a README)")
    p.add_argument("--target", default=None, help="the drafter's target, for the speculators layout, which saves the "
                                                  "target's embedding (default: the target named in the drafter)")
    p.add_argument("--speculative-tokens", type=int, default=3,
                   help="draft tokens per step written into the speculators config and the README's command (default 3)")


def run_export(args) -> int:
    from specdec.export.eagle3 import ENGINES, engine_files, readme, write_engine_dir
    from specdec.heads.io import load_drafter
    if args.to not in ENGINES:
        raise ConfigError(f"--to {args.to!r}; accepted: {', '.join(ENGINES)}")
    if args.speculative_tokens < 1:
        raise ConfigError(f"--speculative-tokens {args.speculative_tokens}; accepted: an integer >= 1")
    cfg = Path(args.drafter) / "config.json"
    if not cfg.is_file():
        raise ConfigError(f"drafter directory {args.drafter!r} has no config.json; accepted: a directory written by "
                          f"`specdec train eagle3`")
    kind = json.loads(cfg.read_text()).get("kind")
    if kind != "eagle3":
        raise ConfigError(f"{args.drafter!r} holds a {kind!r} drafter; accepted: an eagle3 drafter (the EAGLE-3 head "
                          f"that vLLM and SGLang serve; `eagle`, `medusa` and `distilled` drafters have no export yet)")
    config, state = load_drafter(args.drafter, "eagle3")
    embed, verifier = None, args.target or config["target"]["name"]
    if args.to == "speculators":
        from specdec.heads.io import check_target
        from specdec.models.load import load_model
        target = load_model(verifier, quiet=True)
        check_target(config, target, args.drafter)
        embed = target.runtime.embed.float().cpu()
        verifier = args.target or target.info.get("hf_dir", verifier)   # a directory the library can load offline
    files, tensors = engine_files(config, state, args.to, embed=embed, verifier=verifier,
                                  speculative_tokens=args.speculative_tokens)
    out = write_engine_dir(args.out, files, tensors, readme(args.to, str(Path(args.out).resolve()), verifier,
                                                            list(config["feature_layers"]), args.speculative_tokens))
    print(f"wrote {out}/config.json, model.safetensors, README.md ({args.to} layout)")
    return 0
