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

import argparse
import json
from pathlib import Path

import torch

from specdec.bench.harness import conversation
from specdec.bench.questions import default_data_path, load_questions
from specdec.bench.records import REFERENCE
from specdec.models.load import load_model


def rows(rt, prompt: list[int], seq: list[int], width: int) -> torch.Tensor:
    """Logits after each token of seq (following prompt), scored `width` tokens per pass."""
    cache = rt.new_cache(len(prompt) + len(seq) + 1)
    rt.forward(torch.tensor([prompt], device=rt.device), cache, logits="none")
    return torch.cat([rt.forward(torch.tensor([seq[i:i + width]], device=rt.device), cache).logits[0]
                      for i in range(0, len(seq), width)]).float()


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a specdec bench --out directory (greedy)")
    ap.add_argument("--data", type=Path, default=None, help="the run's question file (default: the shipped copy)")
    ap.add_argument("--width", type=int, default=8, help="tokens per pass for the multi-row scoring")
    args = ap.parse_args()
    run = json.loads((args.run / "run.json").read_text())
    target = load_model(run["model"], dtype=run.get("dtype", "float32"))
    questions = {q.question_id: q for q in load_questions(args.data or default_data_path())}
    answers = {(r["question_id"], r["turn"]): r["token_ids"]
               for r in map(json.loads, (args.run / "results.jsonl").open()) if r["method"] == REFERENCE}
    gaps, diffs, flips = [], [], 0
    for (qid, turn), answer in answers.items():
        earlier = [target.decode(answers[(qid, t)]) for t in range(1, turn)]
        prompt = target.encode(conversation(questions[qid], turn, earlier))
        seq = [prompt[-1]] + answer[:-1]
        one, multi = rows(target.runtime, prompt[:-1], seq, 1), rows(target.runtime, prompt[:-1], seq, args.width)
        top = one.topk(2, -1).values
        gaps.append(top[:, 0] - top[:, 1])
        diffs.append((multi - one).abs().max(-1).values)
        flips += int((multi.argmax(-1) != one.argmax(-1)).sum())
    g, d = torch.cat(gaps), torch.cat(diffs)
    print(f"{len(g)} greedy steps of {len(answers)} answers ({run['model']}, {run.get('dtype', 'float32')})")
    print(f"top-2 logit gap: min {g.min():.3g}, 0.1% quantile {g.quantile(0.001):.3g}, "
          f"1% {g.quantile(0.01):.3g}, median {g.median():.3g}")
    print(f"max |1-row - {args.width}-row logit| per step: median {d.median():.3g}, 99% {d.quantile(0.99):.3g}, "
          f"max {d.max():.3g}")
    print(f"steps whose gap is below the largest difference: {int((g < d.max()).sum())}; argmax flips: {flips}")


if __name__ == "__main__":
    main()
