"""How well `suffix`'s confidences predict acceptance: a reliability diagram of the raw frequencies and of the
calibrated values the drafter sizes its drafts by, measured while it decodes a workload in sequence (learning
from each answer, as a server does).

    python scripts/suffix_calibration.py WORKLOAD OUT [--model smollm2-135m] [--max-new-tokens 96]

WORKLOAD is a folder written by scripts/suffix_workload.py (eval.jsonl, warm.jsonl). Every node whose parent was
accepted (or that is a child of the root) is one trial: its raw conditional frequency, the calibrated value the
drafter used when it proposed it (before that step's outcome was known), and whether the target accepted it.
Writes OUT/calibration.json (bins and counts) and OUT/reliability.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from specdec.bench.questions import load_questions
from specdec.drafters.suffix import SuffixDrafter, read_responses
from specdec.engine import SpeculativeDecoder
from specdec.models.load import load_model

BINS = 10


class RecordingSuffix(SuffixDrafter):
    """SuffixDrafter that records (raw, calibrated, accepted) for each tested node before learning from it."""

    trials: list[tuple[float, float, bool]]

    def on_accept(self, result) -> None:
        if self._draft.size:
            conf = self._draft.confidence.tolist()
            parents = self._draft.parents.tolist()
            kept = set(result.accepted_path)
            for i, (raw, parent) in enumerate(zip(self._raw, parents)):
                if parent == -1 or parent in kept:
                    calibrated = conf[i] / conf[parent] if parent >= 0 else conf[i]
                    self.trials.append((raw, calibrated, i in kept))
        super().on_accept(result)


def bins(trials: list[tuple[float, float, bool]], which: int) -> list[dict]:
    out = []
    for b in range(BINS):
        inside = [t for t in trials if min(BINS - 1, int(t[which] * BINS)) == b]
        if inside:
            out.append({"bin": [b / BINS, (b + 1) / BINS], "trials": len(inside),
                        "mean_predicted": sum(t[which] for t in inside) / len(inside),
                        "measured_acceptance": sum(t[2] for t in inside) / len(inside)})
    return out


def expected_calibration_error(rows: list[dict]) -> float:
    total = sum(r["trials"] for r in rows)
    return sum(r["trials"] * abs(r["mean_predicted"] - r["measured_acceptance"]) for r in rows) / total


def plot(raw: list[dict], calibrated: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for rows, label, marker in ((raw, "raw frequency", "o"), (calibrated, "calibrated (used)", "s")):
        x, y = [r["mean_predicted"] for r in rows], [r["measured_acceptance"] for r in rows]
        line, = ax.plot(x, y, alpha=0.5, label=f"{label}, ECE {expected_calibration_error(rows):.3f}")
        ax.scatter(x, y, s=[8 + 4 * r["trials"] ** 0.5 * 4 for r in rows], marker=marker, color=line.get_color())
    ax.text(0.98, 0.02, "marker area grows with the bin's trials", ha="right", fontsize=7, transform=ax.transAxes)
    ax.set_xlabel("predicted acceptance of a node")
    ax.set_ylabel("measured acceptance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    args = ap.parse_args()
    target = load_model(args.model, quiet=True)
    drafter = RecordingSuffix()
    drafter.trials = []
    drafter.warm(read_responses(args.workload / "warm.jsonl", target))
    decoder = SpeculativeDecoder(target, drafter)
    questions = load_questions(args.workload / "eval.jsonl")
    for q in questions:
        decoder.generate(target.encode(q.turns[0]), args.max_new_tokens)    # learns from each answer (end)
    raw, calibrated = bins(drafter.trials, 0), bins(drafter.trials, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"model": args.model, "questions": len(questions), "max_new_tokens": args.max_new_tokens,
              "trials": len(drafter.trials), "raw": raw, "calibrated": calibrated,
              "ece_raw": expected_calibration_error(raw), "ece_calibrated": expected_calibration_error(calibrated)}
    (args.out / "calibration.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(raw, calibrated, args.out / "reliability.png",
         f"suffix on {len(questions)} extraction requests, {len(drafter.trials)} tested nodes")
    print(json.dumps({k: v for k, v in report.items() if k.startswith(("ece", "trials"))}))


if __name__ == "__main__":
    main()
