"""Spec-Bench harness: questions -> interleaved timed runs of every method and baseline (results.jsonl)
-> summary.json, summary.md and PNG plots. Entry point: `run_bench(BenchConfig(...))` or `specdec bench`."""

from specdec.bench.harness import BenchConfig, run_bench
from specdec.bench.questions import BenchDataError, load_questions, select

__all__ = ["BenchConfig", "BenchDataError", "load_questions", "run_bench", "select"]
