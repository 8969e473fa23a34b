"""Shared pieces for the bench tests: a 3-question file (one with 2 turns) and a fast BenchConfig."""

import json
from pathlib import Path

from specdec.bench import BenchConfig

QUESTIONS = [
    {"question_id": 81, "category": "writing", "turns": ["hello world", "what is the capital of France?"]},
    {"question_id": 201, "category": "qa", "turns": ["the quick brown fox"]},
    {"question_id": 301, "category": "summarization", "turns": ["speculative decoding drafts tokens"]},
]


def write_questions(path: Path, rows=QUESTIONS) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fast_config(model_dir: Path, data: Path, out: Path, **kw) -> BenchConfig:
    base = dict(model=str(model_dir), out=out, methods=("vanilla", "pld"), data=data, max_new_tokens=8,
                warmup=1, bandwidth_bytes=1 << 20, progress=False)
    return BenchConfig(**{**base, **kw})
