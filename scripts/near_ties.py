"""How close do greedy decisions come to ties, against how much a 1-row and a k-row pass disagree?

Greedy speculative output equals vanilla output when the target picks the same argmax whether it scores a token
alone (vanilla: one row per pass) or among k verified tokens. In float32 on CPU, MKL computes a 1-row product
and a multi-row product with different rounding, so the logits differ slightly; a decision can flip only where
the top two logits are closer than that. For a `specdec bench` run's vanilla answers this script decodes each
answer again one row at a time and in 8-row passes (teacher-forced, as verification scores a fully accepted
chain), and prints the distribution of top-2 logit gaps, of the 1-row vs 8-row differences, and any flip.

    python scripts/near_ties.py --run docs/bench-pld-2026-11-27
"""

from __future__ import annotations

import torch

from specdec.bench.rescore import (
    load_run,
    recorded_answers,
    run_parser,
    teacher_forced_logits,
)
from specdec.models.load import load_model


@torch.inference_mode()
def main() -> None:
    ap = run_parser(__doc__)
    ap.add_argument("--width", type=int, default=8, help="tokens per pass for the multi-row scoring")
    args = ap.parse_args()
    run = load_run(args.run)
    target = load_model(run["model"], dtype=run.get("dtype", "float32"))
    gaps, diffs, flips, n = [], [], 0, 0
    for prompt, answer in recorded_answers(args.run, target, args.data):
        one = teacher_forced_logits(target.runtime, prompt, answer, 1)
        multi = teacher_forced_logits(target.runtime, prompt, answer, args.width)
        n += 1
        top = one.topk(2, -1).values
        gaps.append(top[:, 0] - top[:, 1])
        diffs.append((multi - one).abs().max(-1).values)
        flips += int((multi.argmax(-1) != one.argmax(-1)).sum())
    g, d = torch.cat(gaps), torch.cat(diffs)
    print(f"{len(g)} greedy steps of {n} answers ({run['model']}, {run.get('dtype', 'float32')})")
    print(f"top-2 logit gap: min {g.min():.3g}, 0.1% quantile {g.quantile(0.001):.3g}, "
          f"1% {g.quantile(0.01):.3g}, median {g.median():.3g}")
    print(f"max |1-row - {args.width}-row logit| per step: median {d.median():.3g}, 99% {d.quantile(0.99):.3g}, "
          f"max {d.max():.3g}")
    print(f"steps whose gap is below the largest difference: {int((g < d.max()).sum())}; exact ties: "
          f"{int((g == 0).sum())}; argmax flips: {flips}")


if __name__ == "__main__":
    main()
