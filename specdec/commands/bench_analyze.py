"""`specdec bench analyze lookup-bound | near-ties | q4-fidelity --run DIR`: parse the arguments, check the run
directory, run the analysis (specdec.bench.analyze) and print it as Markdown or JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from specdec.commands import key_value
from specdec.errors import ConfigError

ANALYSES = ("lookup-bound", "near-ties", "q4-fidelity")


def _common(p: argparse.ArgumentParser, run_help: str) -> None:
    p.add_argument("--run", type=Path, required=True, metavar="DIR", help=run_help)
    p.add_argument("--data", type=Path, default=None, metavar="FILE",
                   help="the run's question file (default: the shipped copy)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of Markdown")


def _sub(sub, name: str, text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


def build_analyze_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specdec bench analyze",
                                     description="Analyses of a finished specdec bench run (its --out directory).")
    parser.set_defaults(command="bench analyze")
    sub = parser.add_subparsers(dest="analysis", required=True, metavar="{" + ",".join(ANALYSES) + "}")
    lb = _sub(sub, "lookup-bound", "how fast prompt lookup can be here: pld replayed over the run's vanilla answers "
              "and the lookup oracle, priced by a cost curve (greedy runs)")
    _common(lb, "a greedy specdec bench --out directory")
    lb.add_argument("--cost-curve", type=Path, required=True, metavar="FILE",
                    help="JSON written by specdec cost-curve --out")
    lb.add_argument("--pld-option", dest="pld_options", action="append", type=key_value, default=[],
                    metavar="KEY=VALUE", help="option of the replayed pld, e.g. min_ngram=2 (values as JSON; default: "
                                              "the run's pld options)")
    nt = _sub(sub, "near-ties", "top-2 logit gaps of greedy decisions against 1-row vs k-row rounding differences")
    _common(nt, "a specdec bench --out directory")
    nt.add_argument("--width", type=int, default=8, metavar="N",
                    help="tokens per pass for the multi-row scoring (default 8)")
    q4 = _sub(sub, "q4-fidelity", "how closely --dtype q4 follows float32 on the run's answers")
    _common(q4, "a float32 greedy specdec bench --out directory")
    return parser


def _check_run(run: Path) -> None:
    missing = [name for name in ("run.json", "results.jsonl") if not (run / name).is_file()]
    if missing:
        raise ConfigError(f"--run {str(run)!r} is not a specdec bench output directory (no {missing[0]}); accepted: "
                          f"a directory written by specdec bench --out")


def _cost_curve(path: Path):
    from specdec.bench.analyze.lookup_bound import cost_curve_from_json
    try:
        return cost_curve_from_json(json.loads(path.read_text()))
    except (OSError, ValueError):
        raise ConfigError(f"--cost-curve {str(path)!r} is not readable JSON; accepted: a file written by "
                          f"specdec cost-curve --out") from None


def _analyze(args):
    from specdec.bench.rescore import load_run
    from specdec.models.load import load_model
    settings = load_run(args.run)
    if args.analysis == "lookup-bound":
        from specdec.bench.analyze.lookup_bound import lookup_bound
        curve = _cost_curve(args.cost_curve)
        target = load_model(settings["model"], quiet=True)
        return lookup_bound(args.run, target, curve, dict(args.pld_options), args.data)
    if args.analysis == "near-ties":
        from specdec.bench.analyze.near_ties import near_ties
        if args.width < 1:
            raise ConfigError(f"--width {args.width} is invalid; accepted: an integer >= 1")
        dtype = settings.get("dtype", "float32")
        target = load_model(settings["model"], dtype=dtype, quiet=True)
        return near_ties(args.run, target, args.width, args.data, dtype)
    from specdec.bench.analyze.q4_fidelity import q4_fidelity
    ref = load_model(settings["model"], dtype="float32", quiet=True)
    return q4_fidelity(args.run, ref, load_model(settings["model"], dtype="q4", quiet=True), args.data)


def run_analyze(args) -> int:
    _check_run(args.run)
    result = _analyze(args)
    print(json.dumps(result.to_json(), indent=1) if args.json else result.markdown())
    return 0
