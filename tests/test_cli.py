"""The command line on a tiny model directory: JSON output, streaming, and one clear line per user mistake."""

import json
import subprocess
import sys

import pytest

from specdec.cli import main
from tests.tiny import write_hf_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path, _ = write_hf_dir(tmp_path_factory.mktemp("cli") / "tiny", scale=3.0)
    return str(path)


def test_generate_json_with_compare_vanilla(model_dir, capsys):
    rc = main(["generate", "--model", model_dir, "--prompt", "hello world", "--max-new-tokens", "12",
               "--method", "pld", "--compare-vanilla", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    for key in ("text", "new_tokens", "seconds", "tokens_per_s", "model", "method", "vanilla_tokens_per_s",
                "speedup", "identical_to_vanilla", "mean_accepted_length"):
        assert key in out
    assert out["identical_to_vanilla"] is True and out["method"] == "pld"
    from specdec.types import GenerationStats
    assert set(GenerationStats().to_dict()) <= set(out)          # the engine's record, as the API has it
    for key in ("acceptance_per_depth", "target_forwards", "draft_seconds", "verify_seconds"):
        assert key in out


def test_plugin_drafter_by_import_path(model_dir, capsys):
    rc = main(["generate", "--model", model_dir, "--prompt", "the quick brown fox", "--max-new-tokens", "10",
               "--method", "tests.test_drafters:target_greedy", "-o", "k=3", "--compare-vanilla", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["identical_to_vanilla"] is True
    assert out["mean_accepted_length"] > 1.5


def test_a_union_with_options_by_member(model_dir, capsys):
    rc = main(["generate", "--model", model_dir, "--prompt", "hello hello hello world", "--max-new-tokens", "12",
               "--method", "pld+vanilla", "-o", "pld.num_draft=3", "-o", "pld.min_ngram=1", "-o", "fit=false",
               "--compare-vanilla", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["identical_to_vanilla"] is True and out["method"] == "pld+vanilla"
    assert main(["methods"]) == 0 and "A+B" in capsys.readouterr().out


def test_streaming_output_prints_text_and_stats(model_dir, capsys):
    rc = main(["generate", "--model", model_dir, "--prompt", "hello", "--max-new-tokens", "8", "--no-chat",
               "--temperature", "0.8", "--top-k", "20", "--seed", "3", "--compare-vanilla"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "tokens/s" in captured.err and "mean accepted length" in captured.err and "speedup" in captured.err


@pytest.mark.parametrize("args,needle", [
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--temperature", "-1"], "temperature=-1.0"),
    (["--temperature", "nan"], "temperature=nan"),
    (["--top-p", "1.5"], "top_p=1.5"),
    (["--top-k", "-3"], "top_k=-3"),
    (["--method", "nope"], "method 'nope' is unknown"),
    (["--rule", "nope"], "rule 'nope' is unknown"),
    (["--max-new-tokens", "0"], "max_new_tokens=0"),
    (["--max-new-tokens", "100000"], "exceeds the context window"),
    (["--dtype", "float8"], "dtype='float8'"),
    (["--method", "pld", "-o", "max_ngram=0"], "max_ngram"),
    (["--method", "pld+nope"], "method 'nope' is unknown"),
    (["--method", "pld+lookahead", "-o", "num_draft=3"], "option 'num_draft' for union 'pld+lookahead' names no member"),
])
def test_user_mistakes_are_one_clear_line(model_dir, capsys, args, needle):
    argv = ["generate", "--prompt", "hi", "--model", model_dir] + args
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_model_file_from_a_real_process(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    proc = subprocess.run([sys.executable, "-m", "specdec.cli", "generate", "--prompt", "hi", "--model", str(bad)],
                          capture_output=True, text=True, env={**__import__("os").environ, "SPECDEC_CACHE": str(tmp_path)})
    assert proc.returncode == 2
    assert proc.stderr.startswith("specdec: error:") and "broken.gguf" in proc.stderr
    assert "Traceback" not in proc.stderr
