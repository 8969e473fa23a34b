"""A retrieval datastore on disk: the corpus token ids, their suffix array, and a JSON header.

Layout of a datastore directory (format version 1):
  header.json        format, version, tokenizer, vocab_size, separator, token_count, documents, inputs (sha256)
  tokens.npy         [n] int32 token ids: each document followed by the separator (the tokenizer's EOS id)
  suffix_array.npy   [n] int32 suffix start positions in lexicographic order
Loading maps both arrays with numpy memmap, so a large datastore costs no memory up front.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Sequence

import numpy as np

from specdec.datastore.suffix_array import MAX_TOKENS, build_suffix_array
from specdec.errors import ConfigError, ModelFileError

FORMAT, VERSION = "specdec-datastore", 1
HEADER, TOKENS, SUFFIXES = "header.json", "tokens.npy", "suffix_array.npy"
BUILD_COMMAND = "specdec datastore build --model {model} --input FILE [FILE...] --out DIR"


@dataclass
class Datastore:
    tokens: np.ndarray               # [n] int32, documents each followed by the separator
    suffix_array: np.ndarray         # [n] int32
    header: dict
    path: Path | None = None         # where it was loaded from or saved to

    @property
    def separator(self) -> int:
        return int(self.header["separator"])

    @property
    def vocab_size(self) -> int:
        return int(self.header["vocab_size"])

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


def build_datastore(documents: Iterable[Sequence[int]], *, separator: int, vocab_size: int, tokenizer: str = "",
                    inputs: Sequence[dict] = ()) -> Datastore:
    """An in-memory datastore of token-id documents; ``inputs`` describes the source files (name, sha256)."""
    docs = [np.asarray(d, dtype=np.int64) for d in documents if len(d)]
    if not docs:
        raise ConfigError("the corpus has no tokens; accepted: input files with some text")
    tokens = np.concatenate([part for d in docs for part in (d, [separator])])     # [n]
    if tokens.shape[0] > MAX_TOKENS:
        raise ConfigError(f"the corpus has {tokens.shape[0]} tokens; accepted: at most {MAX_TOKENS}")
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise ConfigError(f"token ids span [{tokens.min()}, {tokens.max()}]; accepted: ids in [0, {vocab_size})")
    tokens = tokens.astype(np.int32)
    header = {"format": FORMAT, "version": VERSION, "tokenizer": tokenizer, "vocab_size": int(vocab_size),
              "separator": int(separator), "token_count": int(tokens.shape[0]), "documents": len(docs),
              "inputs": list(inputs), "inputs_sha256": _combined_sha256(inputs)}
    return Datastore(tokens, build_suffix_array(tokens), header)


def _combined_sha256(inputs: Sequence[dict]) -> str:
    return hashlib.sha256("".join(i.get("sha256", "") for i in inputs).encode()).hexdigest()


def save_datastore(store: Datastore, out: str | Path) -> int:
    """Write ``store`` into directory ``out`` (created if needed); returns the bytes written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / HEADER).unlink(missing_ok=True)             # the header goes last: no header = incomplete
        np.save(out / TOKENS, store.tokens)
        np.save(out / SUFFIXES, store.suffix_array)
        (out / HEADER).write_text(json.dumps(store.header, indent=2) + "\n")
    except OSError as e:
        raise ConfigError(f"cannot write the datastore to {str(out)!r} ({e.strerror or e}); "
                          f"accepted: a writable directory") from None
    store.path = out
    return sum((out / name).stat().st_size for name in (HEADER, TOKENS, SUFFIXES))


def load_datastore(path: str | Path) -> Datastore:
    """Open a datastore directory written by save_datastore (arrays memory-mapped, read-only)."""
    path = Path(path).expanduser()
    hint = f"accepted: a directory built with `{BUILD_COMMAND.format(model='MODEL')}`"
    if not (path / HEADER).is_file():
        what = "does not exist" if not path.exists() else f"has no {HEADER}"
        raise ModelFileError(f"datastore {str(path)!r} {what}; {hint}")
    try:
        header = json.loads((path / HEADER).read_text())
        tokens = np.load(path / TOKENS, mmap_mode="r")
        suffixes = np.load(path / SUFFIXES, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise ModelFileError(f"datastore {str(path)!r} is unreadable ({e}); {hint}") from None
    header = header if isinstance(header, dict) else {}
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise ModelFileError(f"datastore {str(path)!r} has format {header.get('format')!r} version "
                             f"{header.get('version')!r}, not {FORMAT!r} version {VERSION}; {hint}")
    n = header.get("token_count")
    if tokens.dtype != np.int32 or suffixes.dtype != np.int32 or tokens.shape != (n,) or suffixes.shape != (n,):
        raise ModelFileError(f"datastore {str(path)!r} is damaged: its arrays do not hold the {n} int32 entries "
                             f"its header records; {hint}")
    return Datastore(tokens, suffixes, header, path)


def check_vocabulary(store: Datastore, vocab_size: int, model: str) -> None:
    """Refuse a datastore tokenized for another vocabulary than the target's."""
    if store.vocab_size != vocab_size:
        where = str(store.path) if store.path else "the datastore"
        raise ModelFileError(
            f"datastore {where!r} was built for a vocabulary of {store.vocab_size} tokens (tokenizer "
            f"{store.header.get('tokenizer') or 'unknown'!r}) but model {model!r} has {vocab_size}; accepted: a "
            f"datastore built for this model: `{BUILD_COMMAND.format(model=model)}`")
