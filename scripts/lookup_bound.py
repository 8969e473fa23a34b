"""How fast can prompt lookup be on this machine? Replays a `specdec bench` run's vanilla answers (greedy).

For each question (and turn) of the run: `pld` with the given options replayed (its mean accepted length must
equal the run's measured one: the check that the replay is the engine), and the lookup oracle with matches of at
least 1, 2 and 3 tokens (specdec/bench/replay.py), all priced by a measured verification cost curve. Prints a
Markdown table per Spec-Bench group: speedup over plain decoding / mean accepted length.

    specdec cost-curve --repeats 15 --out curve.json
    specdec bench --methods vanilla,pld --per-category 8 --max-new-tokens 128 --out run/
    python scripts/lookup_bound.py --run run/ --cost-curve curve.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from specdec.bench.harness import conversation
from specdec.bench.questions import default_data_path, load_questions
from specdec.bench.records import REFERENCE
from specdec.bench.replay import Replay, lookup_oracle, replay
from specdec.drafters.cost import CostCurve
from specdec.drafters.pld import PromptLookupDrafter
from specdec.models.load import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a specdec bench --out directory (greedy)")
    ap.add_argument("--cost-curve", type=Path, required=True, help="JSON written by specdec cost-curve --out")
    ap.add_argument("--data", type=Path, default=None, help="the run's question file (default: the shipped copy)")
    ap.add_argument("--pld-option", action="append", default=[], metavar="KEY=VALUE",
                    help="option of the replayed pld, e.g. min_ngram=2 (values as JSON)")
    args = ap.parse_args()

    run = json.loads((args.run / "run.json").read_text())
    if run["sampling"]["temperature"] != 0:
        raise SystemExit("the replay needs a greedy run (temperature 0)")
    c = json.loads(args.cost_curve.read_text())
    curve = CostCurve(tuple(c["k"]), tuple(c["native_ms"]))
    options = run["options"].get("pld", {}) | {k: json.loads(v) for k, v in
                                              (o.split("=", 1) for o in args.pld_option)}
    target = load_model(run["model"])
    eos = min(target.eos_token_ids)
    questions = {q.question_id: q for q in load_questions(args.data or default_data_path())}
    records = [json.loads(line) for line in (args.run / "results.jsonl").open()]
    measured = {(r["question_id"], r["turn"]): r for r in records if r["method"] == "pld"}
    answers: dict[tuple[int, int], list[int]] = {(r["question_id"], r["turn"]): r["token_ids"]
                                                 for r in records if r["method"] == REFERENCE}
    rows: dict[str, dict[str, Replay]] = defaultdict(lambda: defaultdict(Replay))
    for r in records:
        if r["method"] != REFERENCE:
            continue
        q, turn = questions[r["question_id"]], r["turn"]
        earlier = [target.decode(answers[(q.question_id, t)]) for t in range(1, turn)]
        prompt = target.encode(conversation(q, turn, earlier))
        answer = r["token_ids"] + ([eos] if r["finish_reason"] == "stop" else [])
        got = {"pld replayed": replay(lambda: PromptLookupDrafter(**options), prompt, answer, curve,
                                      run["max_new_tokens"])}
        for n in (1, 2, 3):
            got[f"oracle n>={n}"] = lookup_oracle(prompt, answer, curve, min_ngram=n)
        m = measured.get((q.question_id, turn))
        if m:
            got["pld measured"] = Replay(m["emitted_tokens"], m["target_forwards"], 0.0)
        for name, rep in got.items():
            rows[name][q.category] = rows[name][q.category].add(rep)
            rows[name]["overall"] = rows[name]["overall"].add(rep)

    groups = [g for g in dict.fromkeys(questions[r["question_id"]].category for r in records)] + ["overall"]
    print(f"cost curve {args.cost_curve} (k: ms) {dict(zip(curve.sizes, curve.seconds))}; pld options {options}\n")
    print("| | " + " | ".join(groups) + " |")
    print("|---" * (len(groups) + 1) + "|")
    for name, by_group in rows.items():
        cells = []
        for g in groups:
            rep = by_group[g]
            cells.append(f"{rep.mean_accepted_length:.2f}" if name == "pld measured"
                         else f"{rep.speedup(curve):.2f}x / {rep.mean_accepted_length:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
