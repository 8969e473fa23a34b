"""Score a bench run's recorded greedy answers again, teacher-forced, with any target (for rounding and
precision studies: scripts/near_ties.py, scripts/q4_fidelity.py)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import torch

from specdec.bench.harness import conversation
from specdec.bench.questions import default_data_path, load_questions
from specdec.bench.records import REFERENCE


def run_parser(doc: str, run_help: str = "a greedy specdec bench --out directory") -> argparse.ArgumentParser:
    """A script's argument parser with --run (a bench output directory) and --data (its question file)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help=run_help)
    ap.add_argument("--data", type=Path, default=None, help="the run's question file (default: the shipped copy)")
    return ap


def load_run(run: Path) -> dict:
    """A bench output directory's run.json (model, dtype, ...)."""
    return json.loads((run / "run.json").read_text())


def recorded_answers(run: Path, target, data: Path | None = None) -> Iterator[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids) of every vanilla answer in a `specdec bench --out` directory, prompts rebuilt
    with `target`'s chat template exactly as the run built them (earlier turns' answers included)."""
    questions = {q.question_id: q for q in load_questions(data or default_data_path())}
    answers = {(r["question_id"], r["turn"]): r["token_ids"]
               for r in map(json.loads, (run / "results.jsonl").open()) if r["method"] == REFERENCE}
    for (qid, turn), answer in answers.items():
        earlier = [target.decode(answers[(qid, t)]) for t in range(1, turn)]
        yield target.encode(conversation(questions[qid], turn, earlier)), answer


@torch.inference_mode()
def teacher_forced_logits(rt, prompt: list[int], answer: list[int], width: int = 1) -> torch.Tensor:
    """[len(answer), vocab] float32: the logits that chose each answer token, scoring `width` tokens per pass
    after a prefill of the prompt minus its last token (as the engine runs: that token is the first scored)."""
    seq = [prompt[-1]] + answer[:-1]
    cache = rt.new_cache(len(prompt) + len(answer) + 1)
    rt.forward(torch.tensor([prompt[:-1]], device=rt.device), cache, logits="none")
    return torch.cat([rt.forward(torch.tensor([seq[i:i + width]], device=rt.device), cache).logits[0]
                      for i in range(0, len(seq), width)]).float()
