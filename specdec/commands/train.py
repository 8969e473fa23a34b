"""`specdec train KIND`: train a drafter of a registered kind (specdec/train/kinds/) for a target on instruction
data. Each kind's training options become flags (`fuse_layers` -> `--fuse-layers`)."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import fields
from pathlib import Path

from specdec.train.kinds import kinds


def add_train_arguments(p) -> None:
    p.add_argument("kind", choices=[k.name for k in kinds()],
                   help="; ".join(f"{k.name}: {k.description}" for k in kinds()))
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
    add_kind_arguments(p)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--token-budget", type=int, default=4096, help="padded tokens per batch")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--eval-prompts", type=int, default=3, help="held-out prompts decoded at the end")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")


def add_kind_arguments(p) -> None:
    """A flag per kind option (once when several kinds declare it; help prefixed with their names), default None
    so that a run can tell an option left out (the kind's default, or the initial drafter's shape) from one given."""
    owners: dict[str, list] = {}
    for kind in kinds():
        for f in fields(kind.options):
            owners.setdefault(f.name, []).append((kind.name, f))
    for name, declared in owners.items():
        f = declared[0][1]
        p.add_argument(f"--{name.replace('_', '-')}", type=f.metadata["type"], default=None,
                       help=f"{', '.join(k for k, _ in declared)}: {f.metadata['help']}")


def kind_options_given(args) -> dict:
    """Every kind option given on the command line, parsed (an invalid one is refused whichever kind runs)."""
    given = {}
    for kind in kinds():
        for f in fields(kind.options):
            value = getattr(args, f.name, None)
            if value is not None and f.name not in given:
                given[f.name] = f.metadata["parse"](f.name, value)
    return given


def run_train(args) -> int:
    from specdec.errors import ConfigError
    from specdec.models.load import load_model
    from specdec.train.pipeline import build_records, check_settings, train_drafter

    for name in ("per_group", "max_new_tokens", "draft_vocab"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}={getattr(args, name)} is invalid; accepted: an integer >= 1")
    given = kind_options_given(args)
    target = load_model(args.target, dtype=args.dtype, device=args.device)
    from specdec.heads.target import embedding
    embedding(target)                      # a non-native target is refused before any data work
    settings = _settings(args, target, given)
    check_settings(args.kind, target, settings)      # refused before hours of response generation
    records = build_records(target, args.data, settings)
    command = "specdec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = train_drafter(args.kind, target, records, args.out, settings, command=command)
    print(json.dumps(summary.get("decode_eval", summary)), file=sys.stderr)
    print(f"trained {args.kind} drafter written to {args.out}; use it with "
          f"`specdec generate --model {args.target} --method {args.kind} -o drafter={args.out}`", file=sys.stderr)
    return 0


def _settings(args, target, given: dict):
    """The run's settings. Shape options left out take the initial drafter's values (with --init) or the kind's
    defaults; given ones must agree with the initial drafter (check_settings)."""
    from specdec.train.loop import LoopConfig
    from specdec.train.pipeline import TrainSettings, init_shape, read_init
    shape = init_shape(args.kind, read_init(args.kind, target, args.init)[0]) if args.init is not None else {}
    init_vocab = shape.pop("draft_vocab", 8192)
    draft_vocab = args.draft_vocab if args.draft_vocab is not None else init_vocab
    loop = LoopConfig(steps=args.steps, lr=args.lr, token_budget=args.token_budget, eval_every=args.eval_every,
                      checkpoint_every=args.checkpoint_every, seed=args.seed)
    loop.check()
    return TrainSettings(per_group=args.per_group, max_new_tokens=args.max_new_tokens, draft_vocab=draft_vocab,
                         init=args.init, eval_prompts=args.eval_prompts, seed=args.seed, loop=loop,
                         generate=not args.reuse_responses, work_dir=Path(args.work_dir) if args.work_dir else None,
                         options={**shape, **given})
