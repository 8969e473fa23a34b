"""The prompts a serving benchmark sends: Spec-Bench first turns, round-robin across task groups.

Each concurrency level takes the first N prompts of the same order, so levels are compared on the same work and
a level never sends one prompt twice while the file has enough of them (480 in the shipped copy)."""

from __future__ import annotations

from pathlib import Path

from specdec.bench.questions import default_data_path, load_questions, select


def round_robin_prompts(path: str | Path | None = None) -> list[str]:
    """First turns, one group after another: group 1's first, group 2's first, ..., group 1's second, ..."""
    questions = select(load_questions(path or default_data_path()))
    by_group: dict[str, list[str]] = {}
    for q in questions:
        by_group.setdefault(q.category, []).append(q.turns[0])
    order, depth = [], max(len(turns) for turns in by_group.values())
    for i in range(depth):
        order += [turns[i] for turns in by_group.values() if i < len(turns)]
    return order


def prompts_for_level(order: list[str], n: int, offset: int = 0) -> list[str]:
    """n prompts from position `offset` of the order, wrapping around only when n exceeds the file."""
    return [order[(offset + i) % len(order)] for i in range(n)]
