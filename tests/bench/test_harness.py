"""The whole harness on a tiny Hugging Face model directory: outputs, resume, transformers baselines, CLI."""

import json

import pytest

from specdec.bench import run_bench
from specdec.cli import main
from tests.bench.helpers import QUESTIONS, fast_config, write_questions
from tests.tiny import write_hf_dir

UNITS = 4                                # (question, turn) pairs in QUESTIONS: 2 + 1 + 1


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    model_dir, _ = write_hf_dir(root / "model", scale=3.0, seed=1)   # peaky logits: no near-ties in argmax
    return model_dir, write_questions(root / "questions.jsonl")


def _lines(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_outputs_and_hf_vanilla_equals_native_vanilla(files, tmp_path):
    model_dir, data = files
    out = tmp_path / "out"
    summary = run_bench(fast_config(model_dir, data, out, baselines=("hf_vanilla", "hf_pld", "hf_assisted"),
                                    argv=("bench", "--out", str(out))))
    lines = _lines(out)
    assert len(lines) == UNITS * 4 and {r["method"] for r in lines} == {"vanilla", "pld", "hf_vanilla", "hf_pld"}
    assert all(r["identical_to_vanilla"] for r in lines)        # greedy: every method and peer says the same
    assert {(r["question_id"], r["turn"]) for r in lines} == {(81, 1), (81, 2), (201, 1), (301, 1)}
    assert {r["category"] for r in lines} == {"multi_turn", "qa", "summarization"}
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for key in ["machine", "roofline", "methods", "categories", "settings", "notes"]:
        assert key in on_disk
    assert on_disk["machine"]["command"] == f"specdec bench --out {out}"
    assert on_disk["roofline"]["vanilla_fraction_of_bound"] > 0
    assert on_disk["methods"]["vanilla"]["overall"]["mean_accepted_length"] == 1.0
    assert "hf_assisted skipped" in on_disk["notes"][0]
    assert "| pld |" in (out / "summary.md").read_text()
    for png in ["speedup_by_category.png", "acceptance_by_position.png"]:
        assert (out / png).stat().st_size > 1000


def test_second_turn_sees_vanillas_first_answer(files, tmp_path):
    model_dir, data = files
    run_bench(fast_config(model_dir, data, tmp_path, methods=("vanilla",)))
    from specdec.models.load import load_model
    target = load_model(str(model_dir))
    first = next(r for r in _lines(tmp_path) if r["turn"] == 1 and r["question_id"] == 81)
    turns = QUESTIONS[0]["turns"]
    messages = [{"role": "user", "content": turns[0]}, {"role": "assistant", "content": target.decode(
        first["token_ids"])}, {"role": "user", "content": turns[1]}]
    second = next(r for r in _lines(tmp_path) if r["turn"] == 2)
    assert second["prompt_tokens"] == len(target.encode(messages))


def test_resume_measures_only_missing_units(files, tmp_path):
    model_dir, data = files
    cfg = fast_config(model_dir, data, tmp_path)

    def interrupt_after_three(record, seen=[]):
        seen.append(record)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bench(cfg, on_unit=interrupt_after_three)
    first = _lines(tmp_path)
    assert len(first) == 3
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"question_id": 3')                  # a torn write from the interrupted process
    measured = []
    run_bench(cfg, on_unit=measured.append)
    final = _lines(tmp_path)
    keys = [(r["question_id"], r["turn"], r["method"]) for r in final]
    assert len(measured) == UNITS * 2 - 3 and len(final) == UNITS * 2 == len(set(keys))
    assert not {(r["question_id"], r["turn"], r["method"]) for r in measured} & set(keys[:3])
    measured.clear()
    run_bench(cfg, on_unit=measured.append)           # nothing left: only the reports are rewritten
    assert measured == [] and len(_lines(tmp_path)) == UNITS * 2


def test_resume_refuses_other_settings(files, tmp_path, capsys):
    model_dir, data = files
    run_bench(fast_config(model_dir, data, tmp_path, methods=("vanilla",)))
    args = ["bench", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path), "--quiet",
            "--methods", "vanilla", "--max-new-tokens", "9"]
    assert main(args) == 2
    assert "max_new_tokens=8" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--methods", "vanilla,nope"], "method 'nope' is unknown"),
    (["--baselines", "hf_magic"], "baseline 'hf_magic' is unknown"),
    (["--categories", "poetry"], "category 'poetry' is not in the question file"),
    (["--method-option", "pld-max=3"], "METHOD:KEY=VALUE"),
    (["--method-option", "eagle:depth=3"], "not benchmarked"),
    (["--repeats", "0"], "repeats=0"),
])
def test_cli_user_errors_are_one_sentence(files, tmp_path, capsys, extra, message):
    model_dir, data = files
    code = main(["bench", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_cli_bad_data_path_and_malformed_line(tmp_path, capsys):
    assert main(["bench", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"question_id": 1}\n')
    assert main(["bench", "--data", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path)]) == 2
    assert "bad.jsonl:1 has a missing or malformed" in capsys.readouterr().err


def test_cli_end_to_end_with_method_option(files, tmp_path, capsys):
    model_dir, data = files
    out = tmp_path / "cli"
    code = main(["bench", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--quiet",
                 "--methods", "pld", "--method-option", "pld:max_ngram=5", "--categories", "qa,multi_turn",
                 "--per-category", "1", "--max-new-tokens", "6", "--repeats", "2", "--warmup", "0"])
    assert code == 0, capsys.readouterr().err
    lines = _lines(out)
    assert len(lines) == 3 * 2 and all(r["repeats"] == 2 for r in lines)
    assert "| vanilla |" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["settings"]["method_options"] == {"pld": {"max_ngram": 5}}


def test_variants_of_one_method_run_side_by_side_with_their_own_options(files, tmp_path, capsys):
    model_dir, data = files
    out = tmp_path / "variants"
    code = main(["bench", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--quiet",
                 "--methods", "pld,pld@long", "--method-option", "pld@long:num_draft=8",
                 "--method-option", "pld@long:adaptive=false", "--categories", "qa", "--per-category", "1",
                 "--max-new-tokens", "6", "--warmup", "0"])
    assert code == 0, capsys.readouterr().err
    lines = _lines(out)
    assert {r["method"] for r in lines} == {"vanilla", "pld", "pld@long"} and all(r["identical_to_vanilla"]
                                                                                  for r in lines)
    assert "| pld@long |" in capsys.readouterr().out
    options = json.loads((out / "summary.json").read_text())["settings"]["method_options"]
    assert options == {"pld@long": {"num_draft": 8, "adaptive": False}}
    code = main(["bench", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "bad"),
                 "--quiet", "--methods", "nosuch@x"])
    assert code != 0 and "variant NAME@LABEL" in capsys.readouterr().err
