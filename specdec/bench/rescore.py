"""A bench run's recorded answers, read back: the run's settings, every vanilla answer with the prompt it
answered (rebuilt with the target's chat template), and teacher-forced scoring of those answers with any target
(for the analyses in specdec.bench.analyze)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from specdec.bench.harness import conversation
from specdec.bench.questions import default_data_path, load_questions
from specdec.bench.records import REFERENCE
from specdec.errors import ConfigError


@dataclass(frozen=True)
class RecordedAnswer:
    question_id: int
    turn: int
    category: str              # the Spec-Bench group the run reported it under
    prompt: list[int]          # what the target read, chat template applied
    answer: list[int]          # vanilla's greedy answer (without a final end-of-sequence token)
    finish_reason: str         # "stop": the target ended it with an end-of-sequence token; "length": cut


def load_run(run: Path) -> dict:
    """A bench output directory's run.json (model, dtype, sampling, options, max_new_tokens)."""
    return json.loads((run / "run.json").read_text())


def greedy_run(run: Path) -> dict:
    """load_run, for an analysis that needs the target's greedy answers."""
    settings = load_run(run)
    temperature = settings["sampling"]["temperature"]
    if temperature != 0:
        raise ConfigError(f"the run in {str(run)!r} sampled at temperature {temperature}; accepted: a greedy run "
                          f"(temperature 0)")
    return settings


def load_records(run: Path) -> list[dict]:
    """Every complete line of a bench output directory's results.jsonl."""
    records = []
    for line in (run / "results.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue                              # a torn last line of an interrupted run
    return records


def recorded_answers(run: Path, target, data: Path | None = None) -> Iterator[RecordedAnswer]:
    """Every vanilla answer in a `specdec bench --out` directory, prompts rebuilt with `target`'s chat template
    exactly as the run built them (earlier turns' answers included)."""
    data = data or default_data_path()
    questions = {q.question_id: q for q in load_questions(data)}
    vanilla = {(r["question_id"], r["turn"]): r for r in load_records(run) if r["method"] == REFERENCE}
    for (qid, turn), r in vanilla.items():
        if qid not in questions:
            raise ConfigError(f"the run answered question {qid}, which {str(data)!r} does not hold; accepted: the "
                              f"question file the run used")
        earlier = [target.decode(vanilla[(qid, t)]["token_ids"]) for t in range(1, turn)]
        prompt = target.encode(conversation(questions[qid], turn, earlier))
        yield RecordedAnswer(qid, turn, r["category"], prompt, r["token_ids"], r["finish_reason"])


@torch.inference_mode()
def teacher_forced_logits(rt, prompt: list[int], answer: list[int], width: int = 1) -> torch.Tensor:
    """[len(answer), vocab] float32: the logits that chose each answer token, scoring `width` tokens per pass
    after a prefill of the prompt minus its last token (as the engine runs: that token is the first scored)."""
    seq = [prompt[-1]] + answer[:-1]
    cache = rt.new_cache(len(prompt) + len(answer) + 1)
    rt.forward(torch.tensor([prompt[:-1]], device=rt.device), cache, logits="none")
    return torch.cat([rt.forward(torch.tensor([seq[i:i + width]], device=rt.device), cache).logits[0]
                      for i in range(0, len(seq), width)]).float()
