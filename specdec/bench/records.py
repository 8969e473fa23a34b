"""results.jsonl: one record per (question, turn, method), appended and flushed as soon as it is measured.

On start the existing file is read so an interrupted run resumes where it stopped; a torn last line (the
process died mid-write) is dropped. At the end the file is rewritten with ``identical_to_vanilla`` filled in
for records measured before the vanilla run of their (question, turn).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from specdec.bench.measure import Measurement
from specdec.bench.questions import BenchDataError, Question
from specdec.types import GenerationStats

REFERENCE = "vanilla"
Key = tuple  # (question_id, turn, method)


def key_of(record: dict) -> Key:
    return record["question_id"], record["turn"], record["method"]


class ResultsFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: dict[Key, dict] = {}
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        text = self.path.read_text(encoding="utf-8")
        lines = text.split("\n")
        if lines and lines[-1]:                 # no final newline: the last write was torn
            lines.pop()
            self.path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                    self.records[key_of(record)] = record
                except (ValueError, KeyError, TypeError):
                    raise BenchDataError(f"{self.path}:{n} is not a results record; accepted: a results.jsonl "
                                         f"written by specdec bench (or use a new --out directory)") from None

    def __contains__(self, key: Key) -> bool:
        return key in self.records

    def append(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records[key_of(record)] = record

    def finalize(self, keys: list[Key]) -> list[dict]:
        """Rewrite the file with identical_to_vanilla filled in; return the records of `keys`, in that order."""
        filled = fill_identity(list(self.records.values()))
        self.rewrite(filled)
        self.records = {key_of(r): r for r in filled}
        return [self.records[k] for k in keys if k in self.records]

    def rewrite(self, records: list[dict]) -> None:
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        tmp.replace(self.path)


def make_record(q: Question, turn: int, method: str, m: Measurement, repeats: int,
                vanilla_ids: list[int] | None) -> dict:
    """The results.jsonl line of one measured (question, turn, method): the engine's record of the request
    (GenerationStats.to_dict, counts None where the runner cannot tell), seconds the median over repeats."""
    return {
        "question_id": q.question_id, "category": q.category, "raw_category": q.raw_category, "turn": turn,
        "method": method, **_counts(m), "new_tokens": m.new_tokens, "seconds": m.seconds,
        "tokens_per_s": m.new_tokens / m.seconds if m.seconds > 0 else 0.0, "repeats": repeats,
        "prompt_tokens": m.prompt_tokens, "finish_reason": m.finish_reason,
        "identical_to_vanilla": None if vanilla_ids is None else m.token_ids == vanilla_ids,
        "token_ids": m.token_ids,
    }


def _counts(m: Measurement) -> dict:
    if m.stats is not None:
        return m.stats.to_dict()
    return {key: [] if key.endswith("_per_depth") else None for key in GenerationStats().to_dict()}


def fill_identity(records: list[dict]) -> list[dict]:
    """Copies of the records with identical_to_vanilla set from the vanilla record of the same (question, turn)."""
    vanilla = {(r["question_id"], r["turn"]): r["token_ids"] for r in records if r["method"] == REFERENCE}
    out = []
    for r in records:
        ref = vanilla.get((r["question_id"], r["turn"]))
        out.append({**r, "identical_to_vanilla": None if ref is None else r["token_ids"] == ref})
    return out
