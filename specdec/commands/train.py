"""`specdec train {eagle,medusa,distilled}`: train a drafter for a target on instruction data."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path


def add_train_arguments(p) -> None:
    p.add_argument("kind", choices=["eagle", "medusa", "distilled"])
    p.add_argument("--target", default="smollm2-135m", help="the target model (registry name, .gguf, HF dir)")
    p.add_argument("--data", nargs="+", required=True,
                   help="training data files or folders (formats: see specdec/train/prompts.py)")
    p.add_argument("--out", required=True, help="directory for the trained drafter (and its resumable run)")
    p.add_argument("--work-dir", default=None,
                   help="cache of the target's responses and features (default: under the specdec cache)")
    p.add_argument("--per-group", type=int, default=400, help="prompts per task group (default 400)")
    p.add_argument("--reuse-responses", action="store_true",
                   help="generate no new responses: train on the prompts already answered in the work directory")
    p.add_argument("--max-new-tokens", type=int, default=128, help="length of the target's own responses")
    p.add_argument("--init", default=None, metavar="DIR|shipped",
                   help="start from this drafter (a directory written by specdec train, or 'shipped': the one shipped "
                        "for the target) instead of a fresh one; its shape options are kept")
    p.add_argument("--draft-vocab", type=int, default=None, help="tokens the drafter can propose (default 8192)")
    p.add_argument("--heads", type=int, default=None, help="medusa: number of heads (default 4)")
    p.add_argument("--layers", type=int, default=None, help="distilled: number of layers (default 2)")
    p.add_argument("--unroll", type=int, default=3, help="eagle: training-time-test steps")
    p.add_argument("--fuse-layers", default=None,
                   help="eagle: comma-separated target layers (0-based) whose residual streams are fused with the "
                        "final feature, EAGLE-3 style, e.g. 2,15 (default: the final feature alone)")
    p.add_argument("--feature-weight", type=float, default=1.0,
                   help="eagle: weight of the feature regression loss (default 1, as EAGLE-1; 0 drops it, as EAGLE-3)")
    p.add_argument("--cls-weight", type=float, default=0.1,
                   help="eagle: weight of the cross-entropy against the target's distribution (default 0.1)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--token-budget", type=int, default=4096, help="padded tokens per batch")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--eval-prompts", type=int, default=3, help="held-out prompts decoded at the end")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")


def run_train(args) -> int:
    from specdec.errors import ConfigError
    from specdec.models.load import load_model
    from specdec.train.loop import LoopConfig
    from specdec.train.pipeline import (TrainSettings, build_records, check_fuse_layers, check_init_shape,
                                         check_loss_weights, init_shape, read_init, train_drafter)

    for name in ("per_group", "max_new_tokens", "draft_vocab", "heads", "layers", "unroll"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}={getattr(args, name)} is invalid; accepted: an integer >= 1")
    try:
        fuse = None if args.fuse_layers is None else tuple(int(x) for x in args.fuse_layers.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--fuse-layers={args.fuse_layers!r} is invalid; accepted: comma-separated layer "
                          f"indices, e.g. 2,15") from None
    target = load_model(args.target, dtype=args.dtype, device=args.device)
    from specdec.heads.target import embedding
    embedding(target)                      # a non-native target is refused before any data work
    # Shape options left out take the initial drafter's values (with --init) or the defaults; given ones must agree.
    shape = {"draft_vocab": 8192, "heads": 4, "layers": 2, "fuse_layers": ()}
    init_config = read_init(args.kind, target, args.init)[0] if args.init is not None else None
    if init_config is not None:
        shape.update(init_shape(args.kind, init_config))
    given = {"draft_vocab": args.draft_vocab, "heads": args.heads, "layers": args.layers, "fuse_layers": fuse}
    shape.update({k: v for k, v in given.items() if v is not None})
    fuse = shape["fuse_layers"]
    check_fuse_layers(fuse, target)
    check_loss_weights(args.feature_weight, args.cls_weight)
    loop = LoopConfig(steps=args.steps, lr=args.lr, token_budget=args.token_budget, eval_every=args.eval_every,
                      checkpoint_every=args.checkpoint_every, seed=args.seed)
    loop.check()
    settings = TrainSettings(per_group=args.per_group, max_new_tokens=args.max_new_tokens,
                             draft_vocab=shape["draft_vocab"], heads=shape["heads"], layers=shape["layers"],
                             unroll=args.unroll, init=args.init,
                             fuse_layers=fuse, feature_weight=args.feature_weight, cls_weight=args.cls_weight,
                             eval_prompts=args.eval_prompts, seed=args.seed, loop=loop,
                             generate=not args.reuse_responses,
                             work_dir=Path(args.work_dir) if args.work_dir else None)
    if init_config is not None:
        check_init_shape(args.kind, init_config, settings)     # refused before hours of response generation
    records = build_records(target, args.data, settings)
    command = "specdec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = train_drafter(args.kind, target, records, args.out, settings, command=command)
    print(json.dumps(summary.get("decode_eval", summary)), file=sys.stderr)
    print(f"trained {args.kind} drafter written to {args.out}; use it with "
          f"`specdec generate --model {args.target} --method {args.kind} -o drafter={args.out}`", file=sys.stderr)
    return 0
