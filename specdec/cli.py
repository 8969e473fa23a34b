"""`specdec generate | models | methods | bench | bench analyze | cost-curve | latency | datastore | train | serve`: argument
parsing and printing only; the work happens in the library."""

from __future__ import annotations

import argparse
import sys

from specdec.commands import key_value
from specdec.errors import SpecdecError


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2-135m",
                   help="registry name, .gguf file, Hugging Face directory or hub id (default: smollm2-135m)")
    p.add_argument("--dtype", default="float32",
                   help="float32 (default), bfloat16, float16, or q4: 4-bit weights in groups of 32 (native runtime, "
                        "CPU; 1.7-1.9x float32 here, docs/runtime.md)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="CUDA: score each pass of one request's few new tokens through a fixed-shape pass captured "
                        "as CUDA graphs (dense weights)")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--min-p", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specdec", description="Speculative decoding for LLMs.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate text from a prompt, optionally with a drafter")
    g.add_argument("--prompt", required=True)
    _add_model_args(g)
    g.add_argument("--method", default="vanilla", help="drafting method (see `specdec methods`); default vanilla")
    g.add_argument("-o", "--method-option", dest="options", action="append", type=key_value, default=[],
                   metavar="KEY=VALUE", help="drafter option, e.g. -o num_draft=6 (repeatable)")
    g.add_argument("--rule", default="exact", help="verification rule: exact (lossless, seed-stable, default), rejection (lossless rejection "
                        "sampling) or typical (lossy)")
    g.add_argument("--max-new-tokens", type=int, default=128)
    _add_sampling_args(g)
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    g.add_argument("--no-chat", action="store_true", help="do not apply the model's chat template")
    g.add_argument("--compare-vanilla", action="store_true",
                   help="also run vanilla decoding in the same process and report the speedup")
    g.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")

    m = sub.add_parser("models", help="list registry models, or pull one into the cache")
    m.add_argument("action", nargs="?", choices=["list", "pull"], default="list")
    m.add_argument("name", nargs="?")

    sub.add_parser("methods", help="list drafting methods and verification rules")

    c = sub.add_parser("cost-curve", help="time to verify k tokens at a fixed context, native vs transformers")
    _add_model_args(c)
    c.add_argument("--context", type=int, default=512)
    c.add_argument("--k", default="1,2,4,8,16", help="comma-separated token counts (default 1,2,4,8,16)")
    c.add_argument("--repeats", type=int, default=15)
    c.add_argument("--no-transformers", action="store_true", help="time the native runtime only")
    c.add_argument("--out", default=None, help="also write the result as JSON to this file")

    lat = sub.add_parser("latency", help="time per token of vanilla decoding at batch 1 after a fixed context, end "
                                         "to end, against the weights' memory-bandwidth bound")
    _add_model_args(lat)
    _add_sampling_args(lat)
    lat.add_argument("--context", type=int, default=512, help="tokens of context before decoding (default 512)")
    lat.add_argument("--tokens", type=int, default=64, help="tokens decoded per run (default 64)")
    lat.add_argument("--runs", type=int, default=5, help="timed runs; the median of their medians is reported")
    lat.add_argument("--out", default=None, help="also write the result as JSON to this file")

    from specdec.commands.bench import add_bench_arguments
    b = sub.add_parser("bench", help="Spec-Bench: speed of methods and transformers baselines, side by side",
                       epilog="specdec bench analyze {lookup-bound,near-ties,q4-fidelity} --run DIR: analyses of a "
                              "finished run (see specdec bench analyze --help); specdec bench serve --url URL: "
                              "serving throughput of a server on this machine (see specdec bench serve --help)")
    _add_model_args(b)
    _add_sampling_args(b)
    add_bench_arguments(b)

    from specdec.commands.datastore import add_datastore_arguments
    d = sub.add_parser("datastore", help="build a retrieval datastore (a tokenized, indexed corpus) for --method rest")
    add_datastore_arguments(d)

    from specdec.commands.train import add_train_arguments
    t = sub.add_parser("train", help="train a drafter for a target (kinds: specdec train --help)")
    add_train_arguments(t)

    from specdec.commands.export import add_export_arguments
    e = sub.add_parser("export", help="write a trained eagle3 or distilled drafter in the format vLLM, SGLang, "
                                       "speculators or transformers load")
    add_export_arguments(e)

    sub.add_parser("serve", help="an OpenAI-compatible server over the batched engine (specdec serve --help)",
                   add_help=False)
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """`specdec bench analyze NAME ...` has its own parser (so `specdec bench --out ...` keeps its flags)."""
    if argv[:2] == ["bench", "analyze"]:
        from specdec.commands.bench_analyze import build_analyze_parser
        return build_analyze_parser().parse_args(argv[2:])
    if argv[:2] == ["bench", "serve"]:
        from specdec.commands.bench_serve import build_bench_serve_parser
        return build_bench_serve_parser().parse_args(argv[2:])
    if argv[:1] == ["serve"]:
        from specdec.commands.serve import build_serve_parser
        return build_serve_parser().parse_args(argv[1:])
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    try:
        if args.command == "generate":
            from specdec.commands.generate import run_generate
            return run_generate(args)
        if args.command == "models":
            from specdec.commands.models import run_models
            return run_models(args)
        if args.command == "methods":
            from specdec.commands.models import run_methods
            return run_methods(args)
        if args.command == "cost-curve":
            from specdec.commands.bench import run_cost_curve
            return run_cost_curve(args)
        if args.command == "latency":
            from specdec.commands.bench import run_latency
            return run_latency(args)
        if args.command == "bench":
            from specdec.commands.bench import run_bench_command
            return run_bench_command(args, argv)
        if args.command == "bench analyze":
            from specdec.commands.bench_analyze import run_analyze
            return run_analyze(args)
        if args.command == "bench serve":
            from specdec.commands.bench_serve import run_bench_serve
            return run_bench_serve(args, argv)
        if args.command == "train":
            from specdec.commands.train import run_train
            return run_train(args)
        if args.command == "datastore":
            from specdec.commands.datastore import run_datastore
            return run_datastore(args)
        if args.command == "export":
            from specdec.commands.export import run_export
            return run_export(args)
        if args.command == "serve":
            from specdec.commands.serve import run_serve
            return run_serve(args)
    except SpecdecError as e:
        print(f"specdec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("specdec: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
