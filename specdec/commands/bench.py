"""`specdec bench`: parse the arguments into a BenchConfig, run the Spec-Bench harness, print where it wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from specdec.config import SamplingParams
from specdec.errors import ConfigError

if TYPE_CHECKING:
    from specdec.bench.harness import BenchConfig


def add_bench_arguments(p) -> None:
    """The bench-specific flags (model and sampling flags are shared with `generate`, added by the CLI)."""
    p.add_argument("--methods", default="vanilla,pld",
                   help="comma-separated native methods (see `specdec methods`), or variants NAME@LABEL with their own "
                        "--method-option NAME@LABEL:KEY=VALUE; vanilla always runs as reference")
    p.add_argument("--method-option", dest="method_options", action="append", default=[],
                   metavar="METHOD:KEY=VALUE", help="drafter option for one method, e.g. pld:max_ngram=4 (repeatable)")
    p.add_argument("--baselines", default="",
                   help="comma-separated transformers peers: hf_vanilla, hf_pld, hf_assisted (default: none)")
    p.add_argument("--assistant", default=None, help="draft model for hf_assisted (same tokenizer as --model)")
    p.add_argument("--data", default=None, help="Spec-Bench style question.jsonl (default: the shipped copy)")
    p.add_argument("--categories", default=None,
                   help="comma-separated groups: multi_turn, translation, summarization, qa, math_reasoning, rag "
                        "(default: all)")
    p.add_argument("--per-category", type=int, default=None, help="first N questions of each group (default: all)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=1, help="runs per (question, method); the median time is kept")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up generations per method (default 1)")
    p.add_argument("--out", required=True, help="output directory; rerunning with the same one resumes")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def method_option(text: str) -> tuple[str, str, object]:
    """'METHOD:KEY=VALUE' -> (method, key, value); VALUE is JSON when it parses, else a string."""
    left, sep, value = text.partition("=")
    method, colon, key = left.rpartition(":")
    if not sep or not colon or not method or not key:
        raise ConfigError(f"--method-option {text!r} is malformed; accepted: METHOD:KEY=VALUE, e.g. pld:max_ngram=4")
    try:
        return method, key, json.loads(value)
    except ValueError:
        return method, key, value


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def config_from_args(args, argv: list[str]) -> BenchConfig:
    from specdec.bench import BenchConfig
    options: dict[str, dict] = {}
    for method, key, value in (method_option(t) for t in args.method_options):
        options.setdefault(method, {})[key] = value
    sampling = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              min_p=args.min_p, seed=args.seed)
    return BenchConfig(model=args.model, out=Path(args.out), methods=_names(args.methods), method_options=options,
                       baselines=_names(args.baselines), assistant=args.assistant,
                       data=Path(args.data) if args.data else None, categories=_names(args.categories) or None,
                       per_category=args.per_category, max_new_tokens=args.max_new_tokens, sampling=sampling,
                       repeats=args.repeats, warmup=args.warmup, dtype=args.dtype, device=args.device,
                       cuda_graphs=args.cuda_graphs,
                       argv=tuple(argv), progress=not args.quiet)


def run_bench_command(args, argv: list[str]) -> int:
    from specdec.bench import run_bench
    cfg = config_from_args(args, argv)
    try:
        run_bench(cfg)
    except KeyboardInterrupt:
        print(f"specdec: interrupted; rerun the same command to resume from {cfg.out / 'results.jsonl'}",
              file=sys.stderr)
        return 130
    print((cfg.out / "summary.md").read_text())
    print(f"wrote {cfg.out}/results.jsonl, summary.json, summary.md, speedup_by_category.png, "
          f"acceptance_by_position.png", file=sys.stderr)
    return 0


def run_latency(args) -> int:
    from specdec.bench.latency import decode_latency, latency_table
    from specdec.bench.machine import machine_info
    from specdec.models.load import load_model
    sampling = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              min_p=args.min_p, seed=args.seed)
    for name in ("context", "tokens", "runs"):
        least = 2 if name == "tokens" else 1
        if getattr(args, name) < least:
            raise ConfigError(f"--{name} {getattr(args, name)} is invalid; accepted: an integer >= {least}")
    target = load_model(args.model, dtype=args.dtype, device=args.device, cuda_graphs=args.cuda_graphs)
    result = decode_latency(target, context=args.context, tokens=args.tokens, runs=args.runs, sampling=sampling,
                            seed=args.seed or 0)
    result["model"], result["dtype"], result["cuda_graphs"] = target.name, args.dtype, args.cuda_graphs
    result["machine"] = machine_info(args.dtype, args.device, sys.argv[1:])
    print(latency_table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


def run_cost_curve(args) -> int:
    from specdec.bench.baselines import load_transformers
    from specdec.bench.cost_curve import cost_table, verification_cost
    from specdec.bench.machine import machine_info
    from specdec.models.load import load_model
    try:
        ks = [int(k) for k in args.k.split(",")]
    except ValueError:
        raise ConfigError(f"--k {args.k!r} is malformed; accepted: comma-separated integers like 1,2,4,8") from None
    if not ks or min(ks) < 1 or args.context < 1 or args.repeats < 1:
        raise ConfigError("--k values, --context and --repeats must be >= 1")
    target = load_model(args.model, dtype=args.dtype, device=args.device, cuda_graphs=args.cuda_graphs)
    if args.context + max(ks) > target.runtime.max_context:
        raise ConfigError(f"--context {args.context} + k {max(ks)} exceeds the model's window "
                          f"{target.runtime.max_context}")
    hf = None if args.no_transformers else load_transformers(target)
    result = verification_cost(target.runtime, ks, args.context, args.repeats, hf)
    result["machine"] = machine_info(args.dtype, args.device, sys.argv[1:])
    print(cost_table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0
