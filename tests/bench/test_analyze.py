"""`specdec bench analyze NAME --run DIR` on bench runs of a tiny model made here: lookup-bound's pld replay is the
measured run, near-ties counts what the two scorings decide, q4-fidelity reports what q4 answers itself."""

import json

import pytest
import torch

from specdec.bench import run_bench
from specdec.bench.analyze.near_ties import NearTies
from specdec.bench.rescore import recorded_answers
from specdec.cli import main
from specdec.config import SamplingParams
from specdec.engine import SpeculativeDecoder
from specdec.models.load import load_model
from tests.bench.helpers import fast_config, write_questions
from tests.tiny import write_hf_dir

CURVE = {"k": [1, 2, 4, 8, 16], "native_ms": [1.0, 1.25, 1.4, 1.86, 2.2]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(model directory, question file, cost curve file, bench run directory: vanilla and pld, greedy, float32)."""
    root = tmp_path_factory.mktemp("analyze")
    model_dir, _ = write_hf_dir(root / "model", scale=3.0, seed=1)   # peaky logits: no near-ties in argmax
    data = write_questions(root / "questions.jsonl")
    curve = root / "curve.json"
    curve.write_text(json.dumps(CURVE))
    run_bench(fast_config(model_dir, data, root / "run", max_new_tokens=24))
    return model_dir, data, curve, root / "run"


def _analyze(capsys, name: str, run, data, *extra: str) -> tuple[int, str, str]:
    code = main(["bench", "analyze", name, "--run", str(run), "--data", str(data), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _vanilla(run) -> list[dict]:
    return [r for r in map(json.loads, (run / "results.jsonl").read_text().splitlines()) if r["method"] == "vanilla"]


def test_lookup_bound_replays_the_measured_pld_and_the_oracles_bound_it(files, capsys):
    _, data, curve, run = files
    code, out, _ = _analyze(capsys, "lookup-bound", run, data, "--cost-curve", str(curve), "--json")
    rows = json.loads(out)["rows"]
    assert code == 0 and set(rows["pld measured"]) == {"multi_turn", "qa", "summarization", "overall"}
    for group, measured in rows["pld measured"].items():
        replayed = rows["pld replayed"][group]
        assert (replayed["tokens"], replayed["steps"]) == (measured["tokens"], measured["steps"])
        assert replayed["mean_accepted_length"] == measured["mean_accepted_length"]
    overall = {name: by_group["overall"] for name, by_group in rows.items()}
    assert overall["pld replayed"]["mean_accepted_length"] > 1          # pld found something to draft
    assert overall["oracle n>=1"]["steps"] <= overall["oracle n>=2"]["steps"] <= overall["oracle n>=3"]["steps"]
    assert overall["oracle n>=1"]["steps"] <= overall["pld replayed"]["steps"]
    assert overall["oracle n>=1"]["tokens"] == sum(len(r["token_ids"]) + (r["finish_reason"] == "stop")
                                                   for r in _vanilla(run))


def test_lookup_bound_takes_pld_options_and_prints_markdown(files, capsys):
    _, data, curve, run = files
    code, out, _ = _analyze(capsys, "lookup-bound", run, data, "--cost-curve", str(curve),
                            "--pld-option", "min_ngram=3", "--pld-option", "max_ngram=3")
    assert code == 0 and "pld options {'min_ngram': 3, 'max_ngram': 3}" in out
    table = {line.split(" | ")[0]: line for line in out.splitlines() if line.startswith("| ")}
    assert set(table) == {"|", "| pld replayed", "| oracle n>=1", "| oracle n>=2", "| oracle n>=3", "| pld measured"}
    assert table["|"].endswith("| overall |") and "x / " in table["| oracle n>=3"]
    _, out, _ = _analyze(capsys, "lookup-bound", run, data, "--cost-curve", str(curve), "--json",
                         "--pld-option", "min_ngram=3", "--pld-option", "max_ngram=3")
    rows = json.loads(out)["rows"]
    assert rows["oracle n>=3"]["overall"]["steps"] <= rows["pld replayed"]["overall"]["steps"]


def test_near_ties_reports_no_flips_where_rows_agree(files, capsys):
    model_dir, data, _, run = files
    code, out, _ = _analyze(capsys, "near-ties", run, data, "--json")
    got = json.loads(out)
    assert code == 0 and got["argmax_flips"] == 0 and got["width"] == 8
    assert (got["answers"], got["steps"]) == (4, sum(len(r["token_ids"]) for r in _vanilla(run)))
    assert 0 < got["row_difference"]["max"] < got["top2_gap"]["min"]     # float32 rounding, far from any tie
    q4_run = run.parent / "run-q4"          # q4 scores k tokens in one pass exactly as k single-token passes
    run_bench(fast_config(model_dir, data, q4_run, methods=("vanilla",), dtype="q4", max_new_tokens=24))
    code, out, _ = _analyze(capsys, "near-ties", q4_run, data, "--width", "4")
    assert code == 0 and "max |1-row - 4-row logit| per step: median 0, 99% 0, max 0" in out
    assert "argmax flips: 0" in out and "(" + str(model_dir) + ", q4)" in out


def test_near_ties_counts_a_flip_and_the_steps_closer_than_the_rounding():
    ties = NearTies("m", "float32", 8)
    one = torch.tensor([[1.0, 0.95, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 3.0]])     # [steps, vocab]
    multi = torch.tensor([[0.9, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 3.0]])
    ties.add(one, multi)
    got = ties.to_json()
    assert (got["argmax_flips"], got["exact_ties"], got["steps"]) == (1, 1, 3)
    assert got["row_difference"]["max"] == pytest.approx(0.1) and got["top2_gap"]["min"] == 0
    assert got["gap_below_max_difference"] == 2


def test_q4_fidelity_reports_what_q4_answers_itself(files, capsys):
    model_dir, data, _, run = files
    code, out, _ = _analyze(capsys, "q4-fidelity", run, data, "--json")
    got = json.loads(out)
    vanilla = _vanilla(run)
    assert code == 0 and (got["answers"], got["steps"]) == (4, sum(len(r["token_ids"]) for r in vanilla))
    assert 0.5 < got["top1_agreement"] <= 1 and got["mean_kl_nats_per_token"] >= 0
    q4 = SpeculativeDecoder(load_model(str(model_dir), dtype="q4"))
    own = [q4.generate(rec.prompt, len(rec.answer)).token_ids == rec.answer
           for rec in recorded_answers(run, load_model(str(model_dir)), data)]
    assert got["identical_answers"] == sum(own) and len(got["first_differences"]) == len(own) - sum(own)
    _, out, _ = _analyze(capsys, "q4-fidelity", run, data)
    assert f"free-running q4 greedy answers identical to float32's: {sum(own)}/4" in out


@pytest.mark.parametrize("name,extra", [("lookup-bound", ["--cost-curve", "curve.json"]), ("near-ties", []),
                                        ("q4-fidelity", [])])
def test_a_missing_run_directory_is_one_line_and_exit_2(name, extra, tmp_path, capsys):
    code, out, err = _analyze(capsys, name, tmp_path / "nowhere", tmp_path / "q.jsonl", *extra)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("specdec: error: --run ")
    assert str(tmp_path / "nowhere") in err and "specdec bench --out" in err


def test_runs_an_analysis_cannot_read_are_refused_in_one_line(files, tmp_path, capsys):
    model_dir, data, curve, run = files
    bad_curve = tmp_path / "curve.json"
    bad_curve.write_text('{"k": [1, 2]}')
    code, _, err = _analyze(capsys, "lookup-bound", run, data, "--cost-curve", str(bad_curve))
    assert code == 2 and err.count("\n") == 1 and "native_ms" in err
    sampled = tmp_path / "sampled"
    run_bench(fast_config(model_dir, data, sampled, methods=("vanilla",), per_category=1,
                          sampling=SamplingParams(temperature=0.7, seed=1)))
    code, _, err = _analyze(capsys, "lookup-bound", sampled, data, "--cost-curve", str(curve))
    assert code == 2 and err.count("\n") == 1 and "temperature 0.7" in err
