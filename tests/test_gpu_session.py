"""scripts/gpu_session.py: stages chosen by --plan run alone, each writes its own result file as it ends, the test
stage's summary reads pytest's output, and a bad plan is one line with exit 2 before anything runs."""

import importlib.util
import json
from pathlib import Path

import pytest

from tests.tiny import write_hf_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def session():
    spec = importlib.util.spec_from_file_location("gpu_session", ROOT / "scripts" / "gpu_session.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("plan,message", [("foo=5", "--plan names stage 'foo'"), ("tests=x", "--plan 'tests=x' is "
                                          "malformed"), ("eagle=60", "need --prompts FILE")])
def test_a_bad_plan_is_refused_before_anything_runs(session, tmp_path, capsys, plan, message):
    with pytest.raises(SystemExit) as e:
        session.main(["--model", "m", "--out", str(tmp_path / "out"), "--plan", plan])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_pytest_summary_counts_and_lists_problems(session):
    text = "\n".join(["....F.s", "=== short test summary info ===",
                      "FAILED tests/test_a.py::test_x - AssertionError: 1 != 2",
                      "SKIPPED [1] tests/test_b.py:3: needs a GPU",
                      "1 failed, 5 passed, 1 skipped, 2 deselected in 3.21s"])
    r = session.pytest_summary(text)
    assert r["counts"] == {"failed": 1, "passed": 5, "skipped": 1, "deselected": 2}
    assert r["problems"] == ["FAILED tests/test_a.py::test_x - AssertionError: 1 != 2",
                             "SKIPPED [1] tests/test_b.py:3: needs a GPU"] and r["problems_total"] == 2


def test_one_later_stage_runs_alone_and_writes_its_file(session, tmp_path):
    model_dir, _ = write_hf_dir(tmp_path / "model")
    out = tmp_path / "out"
    assert session.main(["--model", str(model_dir), "--device", "cpu", "--out", str(out), "--work",
                         str(tmp_path / "work"), "--plan", "latency=60", "--latency-context", "16", "--latency-tokens", "4",
                         "--latency-runs", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "stage-latency.json"]
    stage = json.loads((out / "stage-latency.json").read_text())
    assert stage["ok"] and stage["result"][str(model_dir)]["ms_per_token"] > 0
    report = json.loads((out / "report.json").read_text())
    assert list(report["stages"]) == ["latency"] and report["stages"]["latency"] == stage
    assert session.main(["--model", str(model_dir), "--device", "cpu", "--out", str(out), "--work",
                         str(tmp_path / "work"), "--plan", "sampling=60"]) == 0     # resumed: a later stage alone
    report = json.loads((out / "report.json").read_text())
    assert list(report["stages"]) == ["latency", "sampling"] and report["stages"]["latency"] == stage
    assert report["stages"]["sampling"]["result"] == {"vanilla": 32, "pld": 32, "lookahead": 32}
