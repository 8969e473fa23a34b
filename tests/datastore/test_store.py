"""Datastores on disk: round trip through memmap, and one clear error per bad input or directory."""

import json

import numpy as np
import pytest

from specdec.datastore import build_datastore, check_vocabulary, load_datastore, retrieve, save_datastore
from specdec.datastore.corpus import read_documents
from specdec.errors import ConfigError, ModelFileError


def test_round_trip(tmp_path):
    store = build_datastore([[5, 6, 7], [5, 6, 8, 9]], separator=1, vocab_size=10, tokenizer="t",
                            inputs=[{"file": "a.txt", "sha256": "ab"}])
    size = save_datastore(store, tmp_path / "ds")
    loaded = load_datastore(tmp_path / "ds")
    assert isinstance(loaded.tokens, np.memmap) and size > 0
    assert loaded.tokens.tolist() == [5, 6, 7, 1, 5, 6, 8, 9, 1]
    assert loaded.suffix_array.tolist() == store.suffix_array.tolist()
    assert loaded.header == store.header and loaded.header["token_count"] == 9 and loaded.header["documents"] == 2
    assert retrieve(loaded, [5, 6], depth=2).counts == retrieve(store, [5, 6], depth=2).counts


def test_build_errors():
    with pytest.raises(ConfigError, match="no tokens"):
        build_datastore([[], []], separator=1, vocab_size=10)
    with pytest.raises(ConfigError, match=r"ids in \[0, 10\)"):
        build_datastore([[3, 12]], separator=1, vocab_size=10)


def test_load_and_save_errors(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist.*specdec datastore build"):
        load_datastore(tmp_path / "missing")
    store = build_datastore([[2, 3]], separator=1, vocab_size=10)
    save_datastore(store, tmp_path / "ds")
    header = json.loads((tmp_path / "ds" / "header.json").read_text())
    (tmp_path / "ds" / "header.json").write_text(json.dumps({**header, "token_count": 5}))
    with pytest.raises(ModelFileError, match="damaged"):
        load_datastore(tmp_path / "ds")
    (tmp_path / "ds" / "header.json").write_text(json.dumps({**header, "version": 99}))
    with pytest.raises(ModelFileError, match="version 99"):
        load_datastore(tmp_path / "ds")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot write the datastore"):
        save_datastore(store, tmp_path / "file" / "ds")
    with pytest.raises(ModelFileError, match="vocabulary of 10 tokens.*has 12"):
        check_vocabulary(store, 12, "other-model")


def test_corpus_formats(tmp_path):
    (tmp_path / "a.txt").write_text("plain text\nsecond line")
    (tmp_path / "b.jsonl").write_text('{"q": "hi", "n": 3, "docs": ["x", {"y": "z"}]}\n\n{"q": "again"}\n')
    (tmp_path / "c.json").write_text('[{"a": "one"}, "two"]')
    docs, inputs = read_documents([tmp_path / "a.txt", tmp_path / "b.jsonl", tmp_path / "c.json"])
    assert docs == ["plain text\nsecond line", "hi\nx\nz", "again", "one", "two"]
    assert [i["file"] for i in inputs] == ["a.txt", "b.jsonl", "c.json"] and len(inputs[0]["sha256"]) == 64
    with pytest.raises(ConfigError, match="does not exist"):
        read_documents([tmp_path / "nope.txt"])
    (tmp_path / "bad.jsonl").write_text('{"a": "ok"}\n{broken\n')
    with pytest.raises(ConfigError, match="bad.jsonl:2 is not valid JSON"):
        read_documents([tmp_path / "bad.jsonl"])
