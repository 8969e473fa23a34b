"""Where specdec keeps downloaded model files and converted weights, and file hashing.

The cache root is ``$SPECDEC_CACHE`` if set, else ``~/.cache/specdec``. Layout:
``files/<registry name>/<file>`` (downloaded sources) and ``converted/<sha256 of source>/`` (a Hugging Face
style model directory: config.json, model.safetensors, tokenizer files) so a second load reads float weights
directly instead of dequantising again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("SPECDEC_CACHE") or Path.home() / ".cache" / "specdec").expanduser()


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_memo(path: Path) -> str:
    """sha256 of a local file, remembered per (path, size, mtime) so large files are hashed once."""
    path = path.resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = cache_root() / "hashes.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if key not in memo:
        memo[key] = sha256_file(path)
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(memo))
        tmp.replace(memo_file)
    return memo[key]
