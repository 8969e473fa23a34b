"""The Spec-Bench run: load the target once, warm up, measure every (question, turn, method) interleaved,
then write summary.json, summary.md and the plots.

Protocol: batch 1, the model's chat template, greedy unless sampling says otherwise. For each question every
method and baseline runs in turn, the order rotated by one per question so that drift (thermal, background
load) hits all alike; each unit runs `repeats` times and keeps the median seconds. A second turn sees the
conversation so far with native vanilla's first answer as the assistant message, so every method decodes the
same context. Native `vanilla` always runs (it is the reference); results.jsonl is appended per unit, so a
rerun with the same --out resumes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from specdec.bench.baselines import BASELINES, make_baselines
from specdec.bench.measure import NativeRunner, measure
from specdec.bench.questions import Question, default_data_path, load_questions, select
from specdec.bench.records import REFERENCE, ResultsFile, make_record
from specdec.bench.report import write_reports
from specdec.config import SamplingParams
from specdec.errors import ConfigError

WARMUP_TOKENS = 32          # warm-up generations are short: they exist to warm caches and thread pools


@dataclass(frozen=True)
class BenchConfig:
    model: str
    out: Path
    methods: tuple[str, ...] = (REFERENCE,)
    method_options: dict[str, dict] = field(default_factory=dict)   # method -> drafter options
    baselines: tuple[str, ...] = ()
    assistant: str | None = None          # draft model for hf_assisted
    data: Path | None = None              # default: the Spec-Bench copy shipped in specdec/data
    categories: tuple[str, ...] | None = None
    per_category: int | None = None
    max_new_tokens: int = 128
    sampling: SamplingParams = SamplingParams()
    repeats: int = 1
    warmup: int = 1
    dtype: str = "float32"
    device: str = "cpu"
    cuda_graphs: bool = False       # the target's few-row passes through CUDA graphs (load_model(cuda_graphs=))
    bandwidth_bytes: int = 256 << 20      # size of the tensor timed for the roofline
    argv: tuple[str, ...] = ()            # command line, recorded in summary.json
    progress: bool = True


def run_bench(cfg: BenchConfig, on_unit=None) -> dict:
    """Measure what results.jsonl still lacks, then write the reports; returns the summary dict.

    on_unit(record) is called after each record is written (tests use it to simulate an interruption).
    """
    methods = _native_methods(cfg)
    questions = select(load_questions(cfg.data or default_data_path()), list(cfg.categories or []) or None,
                       cfg.per_category)
    _check_numbers(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out / "run.json", _settings(cfg, methods))
    store = ResultsFile(out / "results.jsonl")
    from specdec.models.load import load_model
    target = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device, quiet=not cfg.progress,
                        cuda_graphs=cfg.cuda_graphs)
    runners = {m: NativeRunner(target, base_method(m), cfg.method_options.get(m)) for m in methods}
    hf_runners, notes = make_baselines(list(cfg.baselines), target, assistant=cfg.assistant, dtype=cfg.dtype,
                                       device=cfg.device)
    runners.update(hf_runners)
    _measure_all(cfg, target, questions, runners, store, on_unit)
    records = store.finalize(unit_keys(questions, list(runners)))
    return write_reports(cfg, target, records, list(runners), notes)


def base_method(name: str) -> str:
    """'eagle@fixed' -> 'eagle': a variant runs its method with the options given to the variant's full name
    (--method-option eagle@fixed:fit=false), so one run can compare settings of one method side by side."""
    return name.partition("@")[0]


def _native_methods(cfg: BenchConfig) -> list[str]:
    from specdec.drafters import is_method, method_names
    methods = list(dict.fromkeys([REFERENCE, *cfg.methods]))       # vanilla is always measured, first
    for m in methods:
        if not is_method(base_method(m)):
            raise ConfigError(f"method {m!r} is unknown; accepted: {', '.join(method_names())} "
                              f"or package.module:factory, or several joined by '+' (eagle+pld), optionally "
                              f"as a variant NAME@LABEL")
    for m in cfg.method_options:
        if m not in methods:
            raise ConfigError(f"--method-option names method {m!r}, which is not benchmarked; accepted: "
                              f"{', '.join(methods)}")
    bad = [b for b in cfg.baselines if b not in BASELINES]
    if bad:
        raise ConfigError(f"baseline {bad[0]!r} is unknown; accepted: {', '.join(BASELINES)}")
    return methods


def _check_numbers(cfg: BenchConfig) -> None:
    for name, value, lo in [("max_new_tokens", cfg.max_new_tokens, 1), ("repeats", cfg.repeats, 1),
                            ("warmup", cfg.warmup, 0)]:
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ConfigError(f"{name}={value!r} is invalid; accepted: an integer >= {lo}")


def _settings(cfg: BenchConfig, methods: list[str]) -> dict:
    """What must not change between an interrupted run and its resumption."""
    return {"model": cfg.model, "dtype": cfg.dtype, "cuda_graphs": cfg.cuda_graphs, "max_new_tokens": cfg.max_new_tokens,
            "sampling": asdict(cfg.sampling), "options": {m: cfg.method_options.get(m, {}) for m in methods}}


def _check_settings(path: Path, settings: dict) -> None:
    old = json.loads(path.read_text()) if path.is_file() else {}
    for k, v in settings.items():
        if k == "options":
            clash = [m for m in v if m in old.get(k, {}) and old[k][m] != v[m]]
            if clash:
                raise ConfigError(f"--out already holds {clash[0]!r} results with options {old[k][clash[0]]}; "
                                  f"accepted: the same options to resume, or a new --out directory")
        elif k in old and old[k] != v:
            raise ConfigError(f"--out already holds results with {k}={old[k]!r} (now {v!r}); accepted: the same "
                              f"settings to resume, or a new --out directory")
    merged = {**old, **settings, "options": {**old.get("options", {}), **settings["options"]}}
    path.write_text(json.dumps(merged, indent=1))


def _measure_all(cfg, target, questions: list[Question], runners: dict, store: ResultsFile, on_unit) -> None:
    todo = sum(1 for key in unit_keys(questions, list(runners)) if key not in store)
    if not todo:
        return
    from tqdm import tqdm
    first = target.encode(questions[0].turns[0])
    for runner in runners.values():
        for _ in range(cfg.warmup):
            runner.generate(first, min(cfg.max_new_tokens, WARMUP_TOKENS), cfg.sampling, learn=False)  # no head start
    with tqdm(total=todo * cfg.repeats, desc="bench", unit="gen", file=sys.stderr,
              disable=not cfg.progress, dynamic_ncols=True) as bar:
        for i, q in enumerate(questions):
            _run_question(cfg, target, q, _rotated(list(runners), i), runners, store, bar, on_unit)


def unit_keys(questions: list[Question], names: list[str]) -> list[tuple]:
    """(question_id, turn, method) of every unit of the run, in plan order."""
    return [(q.question_id, t, m) for q in questions for t in range(1, len(q.turns) + 1) for m in names]


def _rotated(names: list[str], i: int) -> list[str]:
    k = i % len(names)
    return names[k:] + names[:k]


def _run_question(cfg, target, q: Question, order: list[str], runners: dict, store: ResultsFile, bar,
                  on_unit) -> None:
    answers: list[str] = []
    for turn in range(1, len(q.turns) + 1):
        prompt_ids = target.encode(conversation(q, turn, answers))
        for name in order:
            if (q.question_id, turn, name) in store:
                continue
            bar.set_postfix_str(f"q{q.question_id} t{turn} {name}", refresh=False)
            m = measure(runners[name], prompt_ids, cfg.max_new_tokens, cfg.sampling, cfg.repeats, bar.update)
            ref = store.records.get((q.question_id, turn, REFERENCE))
            record = make_record(q, turn, name, m, cfg.repeats, ref["token_ids"] if ref else None)
            store.append(record)
            if on_unit:
                on_unit(record)
        answers.append(target.decode(store.records[(q.question_id, turn, REFERENCE)]["token_ids"]))


def conversation(q: Question, turn: int, answers: list[str]) -> str | list[dict]:
    """What the target reads at `turn` (1-based): the first turn as plain text (the chat template wraps it), later
    turns as the conversation so far with native vanilla's decoded `answers` to the earlier turns."""
    if turn == 1:
        return q.turns[0]
    messages: list[dict] = []
    for text, answer in zip(q.turns[:turn - 1], answers):
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
    return messages + [{"role": "user", "content": q.turns[turn - 1]}]
