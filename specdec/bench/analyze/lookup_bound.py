"""How fast can prompt lookup be on this machine? A greedy bench run's vanilla answers, replayed.

For each question (and turn) of the run: `pld` with the run's options (or others) replayed (its mean accepted
length equals the run's measured one: the check that the replay is the engine), and the lookup oracle with
matches of at least 1, 2 and 3 tokens (specdec.bench.replay), all priced by a measured verification cost curve.
The table gives, per Spec-Bench group, speedup over plain decoding / mean accepted length.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from specdec.bench.replay import Replay, lookup_oracle, replay
from specdec.bench.rescore import greedy_run, load_records, recorded_answers
from specdec.drafters.cost import CostCurve
from specdec.drafters import make_drafter
from specdec.errors import ConfigError

MEASURED = "pld measured"     # the run's own pld records: mean accepted length only (its cost was not replayed)
ORACLE_NGRAMS = (1, 2, 3)


@dataclass
class LookupBound:
    curve: CostCurve
    pld_options: dict
    groups: list[str]                          # Spec-Bench groups in the run's order, then "overall"
    rows: dict[str, dict[str, Replay]]         # row name -> group -> totals

    def to_json(self) -> dict:
        return {"cost_curve": {"k": list(self.curve.sizes), "ms": list(self.curve.seconds)},
                "pld_options": self.pld_options,
                "rows": {name: {g: {"tokens": rep.tokens, "steps": rep.steps,
                                    "mean_accepted_length": round(rep.mean_accepted_length, 4),
                                    **({} if name == MEASURED else {"speedup": round(rep.speedup(self.curve), 4)})}
                                for g, rep in by_group.items()} for name, by_group in self.rows.items()}}

    def markdown(self) -> str:
        lines = [f"Cost curve (k: ms) {dict(zip(self.curve.sizes, self.curve.seconds))}; pld options "
                 f"{self.pld_options}. Cells: speedup over plain decoding / mean accepted length (tokens per target "
                 f"pass, the target's own token included).", "",
                 "| | " + " | ".join(self.groups) + " |", "|---" * (len(self.groups) + 1) + "|"]
        for name, by_group in self.rows.items():
            reps = [by_group.get(g, Replay()) for g in self.groups]
            cells = [f"{r.mean_accepted_length:.2f}" if name == MEASURED
                     else f"{r.speedup(self.curve):.2f}x / {r.mean_accepted_length:.2f}" for r in reps]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def cost_curve_from_json(result: dict) -> CostCurve:
    """The native curve of a `specdec cost-curve --out` file."""
    try:
        return CostCurve(tuple(result["k"]), tuple(result["native_ms"]))
    except (KeyError, TypeError):
        raise ConfigError("the cost curve has no 'k' and 'native_ms' lists; accepted: a file written by "
                          "specdec cost-curve --out") from None


def lookup_bound(run: Path, target, curve: CostCurve, pld_options: dict | None = None,
                 data: Path | None = None) -> LookupBound:
    """Replay a greedy run's vanilla answers (`target`: the run's model) with pld and the lookup oracles."""
    settings = greedy_run(run)
    options = {**settings["options"].get("pld", {}), **(pld_options or {})}
    eos = min(target.eos_token_ids, default=None)
    measured = {(r["question_id"], r["turn"]): r for r in load_records(run) if r["method"] == "pld"}
    rows: dict[str, dict[str, Replay]] = defaultdict(lambda: defaultdict(Replay))
    groups: list[str] = []
    for rec in recorded_answers(run, target, data):
        answer = rec.answer + ([eos] if rec.finish_reason == "stop" and eos is not None else [])
        got = {"pld replayed": replay(lambda: make_drafter("pld", target, options), rec.prompt, answer, curve,
                                      settings["max_new_tokens"])}
        for n in ORACLE_NGRAMS:
            got[f"oracle n>={n}"] = lookup_oracle(rec.prompt, answer, curve, min_ngram=n)
        m = measured.get((rec.question_id, rec.turn))
        if m:
            got[MEASURED] = Replay(m["emitted_tokens"], m["target_forwards"], 0.0)
        groups += [rec.category] if rec.category not in groups else []
        for name, rep in got.items():
            rows[name][rec.category] = rows[name][rec.category].add(rep)
            rows[name]["overall"] = rows[name]["overall"].add(rep)
    return LookupBound(curve, options, groups + ["overall"], {k: dict(v) for k, v in rows.items()})
