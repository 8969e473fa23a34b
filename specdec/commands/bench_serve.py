"""`specdec bench serve --url URL ...` or `--compare LABEL URL [EXTRA] ...`: parse the arguments, measure the
server(s) on this machine at each concurrency (specdec.bench.serving), merge the runs into DIR/results.json and
rewrite summary.md and throughput.png there."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from specdec.errors import ConfigError


class _OneLineParser(argparse.ArgumentParser):
    """Bad flags are one line, `specdec: error: ...`, and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"specdec: error: {message} (see specdec bench serve --help)\n")


def build_bench_serve_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="specdec bench serve",
                       description="Throughput and latency of an OpenAI-compatible server on this machine (specdec "
                                   "serve, vLLM, llama.cpp) at several concurrency levels, over HTTP only; runs with "
                                   "different --label into one --out make one report.")
    p.set_defaults(command="bench serve")
    p.add_argument("--url", default=None, help="the server's base URL, e.g. http://127.0.0.1:8000/v1 (loopback only)")
    p.add_argument("--label", default="server", help="this configuration's name in the report (default: server)")
    p.add_argument("--compare", nargs="+", action="append", default=None, metavar="LABEL URL [EXTRA_JSON]",
                   help="instead of --url/--label/--extra: one configuration of several measured interleaved "
                        "(repeat the flag); at each level, each round runs every configuration back to back")
    p.add_argument("--rounds", type=int, default=1, metavar="N",
                   help="measurements of each level per configuration, interleaved across --compare "
                        "configurations with their order rotating (default 1)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="results.json (appended to), summary.md and throughput.png go here")
    p.add_argument("--concurrency", default="1,2,4,8,16", metavar="C[,C...]",
                   help="clients in a closed loop, one level each (default 1,2,4,8,16)")
    p.add_argument("--requests", type=int, default=None, metavar="N",
                   help="requests per level (default: max(8, 2 x C))")
    p.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed requests first (default 2)")
    p.add_argument("--model", default=None, help="served model name (default: the first of GET /v1/models)")
    p.add_argument("--endpoint", choices=("chat", "completions"), default="chat",
                   help="chat: /v1/chat/completions with the prompt as a user message (default); completions: "
                        "/v1/completions with the raw prompt")
    p.add_argument("--max-tokens", type=int, default=128, help="completion tokens per request (default 128)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                   help="stream the answers (default; needed for time to first token and inter-token latency)")
    p.add_argument("--extra", default=None, metavar="JSON",
                   help="JSON object merged into every request body, e.g. '{\"method\": \"pld\"}' (specdec) or "
                        "'{\"ignore_eos\": true}' (vLLM)")
    p.add_argument("--api-key", default=None, help="sent as 'Authorization: Bearer KEY'")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds one request may take (default 300)")
    p.add_argument("--baseline", default=None, metavar="LABEL",
                   help="label whose output tokens/s the others are divided by in summary.md (kept for later runs)")
    p.add_argument("--data", type=Path, default=None, metavar="FILE",
                   help="Spec-Bench style question file (default: the shipped copy); first turns are sent")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-level lines")
    return p


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        levels = []
    if not levels or levels[0] < 1:
        raise ConfigError(f"--concurrency {text!r} is invalid; accepted: comma-separated integers >= 1, e.g. 1,2,4,8")
    return tuple(levels)


def _extra(text: str | None) -> dict:
    if text is None:
        return {}
    try:
        extra = json.loads(text)
    except ValueError:
        extra = None
    if not isinstance(extra, dict):
        raise ConfigError(f"--extra {text!r} is not a JSON object; accepted: e.g. '{{\"method\": \"pld\"}}'")
    return extra


def _check_numbers(args, levels: tuple[int, ...]) -> None:
    if args.requests is not None and args.requests < levels[-1]:
        raise ConfigError(f"--requests {args.requests} is fewer than the largest concurrency {levels[-1]}; "
                          f"accepted: at least as many requests per level as clients")
    for flag, value, low in (("--max-tokens", args.max_tokens, 1), ("--warmup", args.warmup, 0),
                             ("--rounds", args.rounds, 1)):
        if value < low:
            raise ConfigError(f"{flag} {value} is invalid; accepted: an integer >= {low}")
    if not args.timeout > 0:
        raise ConfigError(f"--timeout {args.timeout} is invalid; accepted: seconds > 0")
    if args.temperature < 0:
        raise ConfigError(f"--temperature {args.temperature} is invalid; accepted: a number >= 0")


def _configurations(args) -> list[tuple[str, str, str | None]]:
    """(label, url, extra JSON) of each configuration: --url/--label/--extra, or each --compare."""
    if args.compare is None:
        if args.url is None:
            raise ConfigError("no server given; accepted: --url URL, or --compare LABEL URL [EXTRA_JSON] (repeated)")
        return [(args.label, args.url, args.extra)]
    if args.url is not None or args.extra is not None:
        raise ConfigError("--url/--extra and --compare were both given; accepted: one of them (each --compare carries "
                          "its own URL and extra JSON)")
    configs = []
    for values in args.compare:
        if len(values) not in (2, 3):
            raise ConfigError(f"--compare {' '.join(values)!r} is invalid; accepted: LABEL URL [EXTRA_JSON]")
        configs.append((values[0], values[1], values[2] if len(values) == 3 else None))
    labels = [c[0] for c in configs]
    if len(set(labels)) < len(labels):
        raise ConfigError(f"--compare labels {labels} repeat; accepted: a different label per configuration")
    return configs


def config_from_args(args):
    from specdec.bench.serving import RequestSettings, ServeBenchConfig, Target, loopback_base_url
    levels = _levels(args.concurrency)
    _check_numbers(args, levels)
    targets = [Target(label, RequestSettings(loopback_base_url(url), args.model or "", args.endpoint, args.max_tokens,
                                             args.temperature, args.stream, _extra(extra), args.timeout,
                                             args.api_key))
               for label, url, extra in _configurations(args)]
    return ServeBenchConfig(targets, levels, args.requests, args.warmup, args.data, args.rounds, not args.quiet)


def level_line(label: str, lv: dict) -> str:
    ttft = lv["ttft_ms"]
    spec = lv["speculative"]
    errors = sum(lv["errors"].values())
    return (f"{label} C={lv['concurrency']}: {lv['output_tokens_per_s']:.1f} output tok/s, "
            f"{lv['requests_per_s']:.2f} req/s" + (f", TTFT p50 {ttft['p50']:.0f} ms" if ttft else "")
            + (f", mean accepted length {spec['mean_accepted_length']:.2f}" if spec else "")
            + f", {lv['completed']}/{lv['requests']} ok" + (f", errors {lv['errors']}" if errors else ""))


def run_bench_serve(args, argv: list[str]) -> int:
    from specdec.bench.serving import run_benchmark
    from specdec.bench.serving.plot import plot_throughput
    from specdec.bench.serving.report import write_summary
    from specdec.bench.serving.results import add_run, load_results, save_results

    cfg = config_from_args(args)
    data = load_results(args.out)       # a foreign results.json is refused before any request
    runs = run_benchmark(cfg, None if args.quiet else lambda label, lv: print(level_line(label, lv), flush=True))
    machine = client_machine(argv)
    labels = [t.label for t in cfg.targets]
    together = {"id": f"{time.strftime('%Y%m%dT%H%M%S')}-{'+'.join(labels)}", "labels": labels, "rounds": cfg.rounds}
    for target, measured in zip(cfg.targets, runs):
        run = {"label": target.label, "machine": machine, "command": machine["command"],
               "settings": {**vars(target.request), "model": measured.model, "api_key": None,
                            "concurrency": list(cfg.concurrency), "requests": args.requests, "warmup": args.warmup,
                            "rounds": cfg.rounds, "data": str(args.data) if args.data else None},
               "interleaved": together, "levels": measured.levels}
        data = add_run(data, run, args.baseline)
    paths = [save_results(args.out, data), write_summary(args.out, data),
             plot_throughput(data, args.out / "throughput.png")]
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def client_machine(argv: list[str]) -> dict:
    """specdec bench's machine record of the client's side; the server's dtype and device belong to its label."""
    from specdec.bench.machine import machine_info
    info = machine_info("-", "cpu", argv)
    return {k: v for k, v in info.items() if k not in ("dtype", "device", "gpu")}
