"""results.jsonl records: a native method's line is the engine's own record of the request; a transformers
baseline's has the same keys with the counts it cannot tell as None; lines written before that still summarize."""

import json

from specdec.bench.measure import Measurement, NativeRunner, measure
from specdec.bench.questions import Question
from specdec.bench.records import make_record
from specdec.bench.summary import summarize
from specdec.config import SamplingParams
from tests.tiny import tiny_target

QUESTION = Question(question_id=7, category="qa", raw_category="qa", turns=("hi",))

# A line as the bench wrote it before records came from GenerationStats.to_dict (docs/results/ holds such runs).
OLD = {"question_id": 7, "category": "qa", "raw_category": "qa", "turn": 1, "method": "pld", "new_tokens": 8,
       "seconds": 0.5, "tokens_per_s": 16.0, "repeats": 1, "target_forwards": 4, "mean_accepted_length": 2.0,
       "acceptance_per_depth": [0.75, 0.5], "accepted_per_depth": [3, 1], "reached_per_depth": [4, 2],
       "emitted_tokens": 8, "draft_seconds": 0.01, "verify_seconds": 0.4, "prompt_tokens": 3,
       "finish_reason": "length", "identical_to_vanilla": True, "token_ids": list(range(8))}


def test_a_native_record_is_the_engines_record_and_a_baselines_has_the_same_keys():
    target, _ = tiny_target(vocab=16, layers=1, hidden=16, heads=2, kv_heads=1, seed=1)
    runner = NativeRunner(target, "pld", {"min_ngram": 1})
    m = measure(runner, [1, 2, 1, 2, 1], 8, SamplingParams(), repeats=3)
    native = make_record(QUESTION, 1, "pld", m, 3, None)
    assert {k: native[k] for k in m.stats.to_dict()} == m.stats.to_dict()
    assert native["seconds"] == m.stats.seconds and native["new_tokens"] == m.stats.new_tokens
    baseline = make_record(QUESTION, 1, "hf_vanilla", Measurement(list(range(8)), 0.25, prompt_tokens=5), 1, None)
    assert baseline.keys() == native.keys() and set(OLD) <= set(native)
    assert baseline["target_forwards"] is None and baseline["accepted_per_depth"] == []
    assert baseline["tokens_per_s"] == 32.0 and baseline["prompt_tokens"] == 5


def test_repeats_keep_the_first_runs_counts_and_median_times():
    class Fake:
        def __init__(self):
            self.calls = 0

        def generate(self, prompt_ids, max_new_tokens, sampling, learn=True):
            self.calls += 1
            from specdec.types import GenerationStats
            stats = GenerationStats(new_tokens=2, seconds=float(self.calls), draft_seconds=0.1 * self.calls,
                                    target_forwards=self.calls)
            return Measurement([1, 2], stats.seconds, stats)

    m = measure(Fake(), [0], 2, SamplingParams(), repeats=3)
    assert m.seconds == m.stats.seconds == 2.0 and m.stats.draft_seconds == 0.2 and m.stats.target_forwards == 1


def test_old_and_new_records_summarize_together():
    target, _ = tiny_target(vocab=16, layers=1, hidden=16, heads=2, kv_heads=1, seed=1)
    m = measure(NativeRunner(target, "vanilla"), [1, 2, 3], 8, SamplingParams(), repeats=1)
    new = json.loads(json.dumps(make_record(QUESTION, 1, "vanilla", m, 1, None)))
    s = summarize([OLD, new], ["vanilla", "pld"])
    assert s["methods"]["pld"]["overall"]["acceptance_per_position"] == [0.75, 0.5]
    assert s["methods"]["pld"]["overall"]["mean_accepted_length"] == 2.0
    assert s["methods"]["vanilla"]["overall"]["mean_accepted_length"] == 1.0
