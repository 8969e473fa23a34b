"""Spec-Bench questions: read a question.jsonl file, map raw categories to task groups, pick a subset.

Spec-Bench's six task groups: the eight MT-bench categories form ``multi_turn`` (multi-turn conversation), the
others (translation, summarization, qa, math_reasoning, rag) are groups of their own. A file of the same format
with other categories works too: each unknown raw category is its own group.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from specdec.errors import SpecdecError

MT_BENCH_CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
MULTI_TURN = "multi_turn"
GROUPS = (MULTI_TURN, "translation", "summarization", "qa", "math_reasoning", "rag")


class BenchDataError(SpecdecError):
    """The question file or the category selection is unusable."""


@dataclass(frozen=True)
class Question:
    question_id: int | str
    category: str               # task group, e.g. "multi_turn"
    raw_category: str           # category as written in the file, e.g. "writing"
    turns: tuple[str, ...]      # user turns, 1 or 2


def default_data_path() -> Path:
    """The Spec-Bench question file shipped inside the package (see specdec/data/README.md)."""
    return Path(__file__).resolve().parent.parent / "data" / "spec_bench_question.jsonl"


def group_of(raw_category: str) -> str:
    return MULTI_TURN if raw_category in MT_BENCH_CATEGORIES else raw_category


def load_questions(path: str | Path) -> list[Question]:
    path = Path(path)
    if not path.is_file():
        raise BenchDataError(f"question file {str(path)!r} does not exist; accepted: a Spec-Bench style "
                             f"question.jsonl (default: the copy shipped in specdec/data)")
    questions, seen = [], set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            q = _parse_line(line, f"{path}:{lineno}")
            if q.question_id in seen:
                raise BenchDataError(f"{path}:{lineno}: question_id {q.question_id!r} appears twice; "
                                     f"accepted: unique ids")
            seen.add(q.question_id)
            questions.append(q)
    if not questions:
        raise BenchDataError(f"question file {str(path)!r} holds no questions; accepted: one JSON object a line")
    return questions


def _parse_line(line: str, where: str) -> Question:
    expected = ('accepted: {"question_id": int or str, "category": str, "turns": [1 or 2 non-empty strings]}')
    try:
        obj = json.loads(line)
    except ValueError:
        raise BenchDataError(f"{where} is not valid JSON; {expected}") from None
    if not isinstance(obj, dict):
        raise BenchDataError(f"{where} is not a JSON object; {expected}")
    qid, cat, turns = obj.get("question_id"), obj.get("category"), obj.get("turns")
    ok = (isinstance(qid, (int, str)) and not isinstance(qid, bool) and isinstance(cat, str) and cat
          and isinstance(turns, list) and 1 <= len(turns) <= 2
          and all(isinstance(t, str) and t.strip() for t in turns))
    if not ok:
        raise BenchDataError(f"{where} has a missing or malformed question_id / category / turns; {expected}")
    return Question(qid, group_of(cat), cat, tuple(turns))


def select(questions: list[Question], categories: list[str] | None = None,
           per_category: int | None = None) -> list[Question]:
    """The first `per_category` questions (file order) of each chosen group, groups in Spec-Bench order."""
    present = _group_order(questions)
    chosen = list(categories) if categories else present
    for c in chosen:
        if c not in present:
            raise BenchDataError(f"category {c!r} is not in the question file; accepted: {', '.join(present)}")
    if per_category is not None and (isinstance(per_category, bool) or per_category < 1):
        raise BenchDataError(f"per_category={per_category!r} is invalid; accepted: an integer >= 1")
    picked = []
    for c in dict.fromkeys(chosen):
        picked += [q for q in questions if q.category == c][:per_category]
    return picked


def _group_order(questions: list[Question]) -> list[str]:
    """Groups present in the file: Spec-Bench's six first (in their order), then others by first appearance."""
    present = list(dict.fromkeys(q.category for q in questions))
    return [g for g in GROUPS if g in present] + [g for g in present if g not in GROUPS]
