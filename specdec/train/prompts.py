"""Training prompts from instruction datasets (the files listed in ../shared/data/train/README.md).

Each loader turns one file format into (group, prompt) pairs phrased like the Spec-Bench task groups
(multi-turn chat, translation, summarization, qa, math_reasoning, rag). Prompts are deduplicated across files
by normalised text and mixed in a seeded order; Spec-Bench questions themselves are never read here.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from specdec.errors import ConfigError


@dataclass(frozen=True)
class Prompt:
    group: str
    text: str
    source: str


def _jsonl(path: Path) -> Iterator[dict | str]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue            # e.g. triviaqa_3000.jsonl line 1781 is not valid JSON: skip the record


def _strip_eot(text: str) -> str:
    return text.replace("<|endoftext|>", "").strip()


def _instruction(rec: dict) -> str:
    inp = rec.get("input") or ""
    if not inp and rec.get("instances"):
        inp = rec["instances"][0].get("input") or ""
    return rec["instruction"].strip() + (f"\n\n{inp.strip()}" if inp.strip() else "")


def _lines(path: Path) -> list[str]:
    return [x.strip() for x in path.read_text(encoding="utf-8").splitlines()]


LOADERS: dict[str, tuple[str, Callable[[Path], Iterator[str]]]] = {
    "oasst_prompt_lottery_en_250.jsonl": ("multi_turn", lambda p: (r for r in _jsonl(p) if isinstance(r, str))),
    "oasst_en_100_tree.jsonl": ("multi_turn", lambda p: (r["prompt"]["text"] for r in _jsonl(p))),
    "selfinstruct_user_oriented_252.jsonl": ("multi_turn", lambda p: map(_instruction, _jsonl(p))),
    "selfinstruct_seed_tasks_175.jsonl": ("multi_turn", lambda p: map(_instruction, _jsonl(p))),
    "gpteacher_roleplay.json": ("multi_turn", lambda p: map(_instruction, json.loads(p.read_text()))),
    "gpteacher_codegen.json": ("multi_turn", lambda p: map(_instruction, json.loads(p.read_text()))),
    "wmt22_deen_src.de": ("translation", lambda p: (f"Translate German to English: {x}" for x in _lines(p) if x)),
    "wmt23_deen_src.de": ("translation", lambda p: (f"Translate German to English: {x}" for x in _lines(p) if x)),
    "cnndm_train_t0_200.jsonl": ("summarization", lambda p: (r["prompt"].strip() for r in _jsonl(p))),
    "xsum_t0_200.jsonl": ("summarization", lambda p: (r["prompt"].strip() for r in _jsonl(p))),
    "multinews_t0_200.jsonl": ("summarization", lambda p: (r["prompt"].strip() for r in _jsonl(p))),
    "triviaqa_3000.jsonl": ("qa", lambda p: (r["context"].removeprefix("Question:").removesuffix("Answer:").strip()
                                             for r in _jsonl(p))),
    "hotpotqa_closedbook_t0_200.jsonl": ("qa", lambda p: (r["prompt"].strip() for r in _jsonl(p))),
    "gsm8k_train.jsonl": ("math_reasoning", lambda p: (r["question"].strip() for r in _jsonl(p))),
    "quac_rag_1000.jsonl": ("rag", lambda p: (r["query"].strip() for r in _jsonl(p))),
    "adversarialqa_passage_t0_200.jsonl": ("rag", lambda p: (r["prompt"].strip() for r in _jsonl(p))),
}


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def load_prompts(paths: list[str | Path], *, per_group: int | None = None, seed: int = 0) -> list[Prompt]:
    """Prompts from files and folders (known file names only), deduplicated, at most per_group per group,
    in a seeded order that interleaves groups."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.name in LOADERS)
        elif p.name in LOADERS:
            files.append(p)
        elif p.exists():
            raise ConfigError(f"training data file {str(p)!r} has an unknown format; accepted: a folder or one of "
                              f"{', '.join(sorted(LOADERS))}")
        else:
            raise ConfigError(f"training data path {str(p)!r} does not exist")
    if not files:
        raise ConfigError(f"no known training data files in {[str(p) for p in paths]}; accepted names: "
                          f"{', '.join(sorted(LOADERS))}")
    seen: set[str] = set()
    by_group: dict[str, list[Prompt]] = {}
    for f in files:
        group, loader = LOADERS[f.name]
        for text in loader(f):
            key = _norm(text)
            if len(key) < 8 or key in seen:
                continue
            seen.add(key)
            by_group.setdefault(group, []).append(Prompt(group, _strip_eot(text), f.name))
    rng = random.Random(seed)
    by_group = {g: _round_robin(items, rng) for g, items in by_group.items()}
    if per_group is not None:
        by_group = {g: v[:per_group] for g, v in by_group.items()}
    mixed = [p for g in sorted(by_group) for p in by_group[g]]
    rng.shuffle(mixed)
    return mixed


def _round_robin(items: list[Prompt], rng: random.Random) -> list[Prompt]:
    """Shuffle within each source file, then take one prompt per source in turn (small files are not drowned)."""
    by_source: dict[str, list[Prompt]] = {}
    for p in items:
        by_source.setdefault(p.source, []).append(p)
    queues = [rng.sample(v, len(v)) for _, v in sorted(by_source.items())]
    out: list[Prompt] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop())
    return out
