"""`specdec datastore build` on a tiny model directory, then `generate --method rest` with it; one clear line
per user mistake."""

import json

import pytest

from specdec.cli import main
from specdec.datastore import load_datastore
from tests.tiny import write_hf_dir




TEXT = "the quick brown fox jumps over the lazy dog. speculative decoding drafts tokens and the target verifies them."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path, _ = write_hf_dir(tmp_path_factory.mktemp("ds-cli") / "tiny", scale=3.0)
    return path


def test_build_then_generate(model_dir, tmp_path, capsys):
    (tmp_path / "corpus.txt").write_text(TEXT)
    out = tmp_path / "ds"
    assert main(["datastore", "build", "--model", str(model_dir), "--input", str(tmp_path / "corpus.txt"),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    store = load_datastore(out)
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    assert store.tokens.tolist() == tok(TEXT, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert f"{len(store)} tokens" in printed and "MB on disk" in printed and store.header["tokenizer"] == str(model_dir)
    rc = main(["generate", "--model", str(model_dir), "--prompt", "the quick brown", "--no-chat", "--max-new-tokens",
               "8", "--method", "rest", "-o", f"datastore={out}", "-o", "min_suffix=1", "--compare-vanilla", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["identical_to_vanilla"] is True and report["method"] == "rest"


@pytest.mark.parametrize("case,needle", [
    ("missing", "input file"),
    ("empty", "the corpus has no tokens"),
    ("unwritable", "cannot write the datastore"),
    ("no-datastore", "needs a datastore; build one with `specdec datastore build --model"),
    ("other-vocab", "was built for a vocabulary of"),
])
def test_user_mistakes_are_one_clear_line(model_dir, tmp_path, capsys, case, needle):
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "corpus.txt").write_text(TEXT)
    (tmp_path / "a-file").write_text("x")
    build = ["datastore", "build", "--model", str(model_dir), "--out", str(tmp_path / "ds"), "--input"]
    generate = ["generate", "--model", str(model_dir), "--prompt", "hi", "--method", "rest"]
    if case == "other-vocab":
        from specdec.datastore import build_datastore, save_datastore
        save_datastore(build_datastore([[1, 2]], separator=0, vocab_size=7), tmp_path / "small")
    argv = {"missing": build + [str(tmp_path / "nope.txt")],
            "empty": build + [str(tmp_path / "empty.txt")],
            "unwritable": build[:5] + [str(tmp_path / "a-file" / "ds"), "--input", str(tmp_path / "corpus.txt")],
            "no-datastore": generate,
            "other-vocab": generate + ["-o", f"datastore={tmp_path / 'small'}"]}[case]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err, err
