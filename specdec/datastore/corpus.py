"""Corpus files -> text documents -> token-id documents (with the target's tokenizer).

Accepted inputs: ``.jsonl`` (each line one JSON value; its strings, nested ones included, joined by newlines
form one document), ``.json`` (a list: one document per item; anything else: one document), any other file
read whole as plain UTF-8 text (one document).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from collections.abc import Sequence

from specdec.errors import ConfigError

ACCEPTED = "existing .txt (or other UTF-8 text), .jsonl or .json files"


def read_documents(files: Sequence[str | Path]) -> tuple[list[str], list[dict]]:
    """(text documents of all files in order, one {file, bytes, sha256} record per file)."""
    if not files:
        raise ConfigError(f"no input files given; accepted: {ACCEPTED}")
    documents, inputs = [], []
    for name in files:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"input file {str(name)!r} does not exist or is not a file; accepted: {ACCEPTED}")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"input file {str(name)!r} is not UTF-8 text; accepted: {ACCEPTED}") from None
        documents += _split(text, path)
        inputs.append({"file": path.name, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})
    return [d for d in documents if d.strip()], inputs


def _split(text: str, path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json"):
        return [text]
    try:
        if suffix == ".json":
            value = json.loads(text)
            return [_strings(v) for v in value] if isinstance(value, list) else [_strings(value)]
        docs = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                docs.append(_strings(json.loads(line)))
    except json.JSONDecodeError as e:
        where = f"{path}:{number}" if suffix == ".jsonl" else str(path)
        raise ConfigError(f"input file {where} is not valid JSON ({e.msg}); accepted: {ACCEPTED}") from None
    return docs


def _strings(value) -> str:
    """All strings inside a JSON value (object values and list items, depth first), joined by newlines."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return "\n".join(s for s in (_strings(v) for v in value) if s)
    return ""


def tokenize_documents(tokenizer, documents: list[str], batch: int = 256) -> list[list[int]]:
    """Token ids of each document (no special tokens added)."""
    ids: list[list[int]] = []
    for i in range(0, len(documents), batch):
        ids += tokenizer(documents[i:i + batch], add_special_tokens=False, verbose=False)["input_ids"]
    return ids
