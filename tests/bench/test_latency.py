"""`specdec latency` (specdec/bench/latency.py): a token's time is one whole decode step, the prefill is kept
apart, the bound comes from the weights and the measured bandwidth, and mistakes are one line with exit 2."""

import json
import time

import pytest

from specdec.bench.latency import decode_latency, latency_table
from specdec.cli import main
from specdec.errors import ConfigError
from tests.tiny import tiny_target, write_hf_dir


def _slowed(target, decode_s: float, prefill_s: float):
    """The target's passes made slower by known amounts: a pass of one row (a decode step) and a longer one."""
    forward = target.runtime.forward_batch

    def slow(segments, **kw):
        time.sleep(decode_s if sum(s.rows for s in segments) == 1 else prefill_s)
        return forward(segments, **kw)
    target.runtime.forward_batch = slow
    return target


def test_a_tokens_time_is_its_decode_step_and_the_prefill_is_reported_apart():
    target = _slowed(tiny_target()[0], decode_s=0.02, prefill_s=0.15)
    r = decode_latency(target, context=16, tokens=5, runs=2, bandwidth_bytes=1 << 20)
    assert r["tokens_timed"] == 2 * 4                              # 5 tokens: 4 intervals a run, no end of sequence
    assert 20 <= r["ms_per_token_min"] <= r["ms_per_token"] < 150  # each interval holds one 20 ms step, no prefill
    assert r["first_token_ms"] >= 150
    assert len(r["ms_per_token_runs"]) == 2 and r["tokens_per_s"] == pytest.approx(1e3 / r["ms_per_token"], rel=1e-2)
    assert r["weight_bytes_per_token"] > 0 and r["bound_ms_per_token"] > 0
    assert r["times_bound"] == pytest.approx(r["ms_per_token"] / r["bound_ms_per_token"], rel=1e-2)
    assert "ms per token" in latency_table(r) and "bandwidth bound" in latency_table(r)


def test_no_probe_no_bound():
    r = decode_latency(tiny_target()[0], context=4, tokens=3, runs=1, bandwidth_bytes=0)
    assert "bound_ms_per_token" not in r and "bandwidth bound" not in latency_table(r)


@pytest.mark.parametrize("kw,match", [({"tokens": 1}, "tokens=1"), ({"runs": 0}, "runs=0"),
                                      ({"context": 0}, "context=0"), ({"context": 252}, "context window")])
def test_bad_settings_are_refused_before_any_run(kw, match):
    with pytest.raises(ConfigError, match=match):
        decode_latency(tiny_target()[0], **{"context": 8, "tokens": 4, **kw})


def test_cli_prints_the_table_and_writes_json(tmp_path, capsys):
    model_dir, _ = write_hf_dir(tmp_path / "model")
    out = tmp_path / "latency.json"
    code = main(["latency", "--model", str(model_dir), "--context", "8", "--tokens", "3", "--runs", "1",
                 "--out", str(out)])
    assert code == 0 and "ms per token" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["context"] == 8 and result["dtype"] == "float32" and result["machine"]
    assert main(["latency", "--model", str(model_dir), "--tokens", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["specdec: error: --tokens 1 is invalid; accepted: an integer >= 2"]
    assert main(["latency", "--model", str(model_dir), "--cuda-graphs"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "specdec: error: CUDA graphs need a CUDA device, got device='cpu'; accepted: cuda, cuda:N"]
