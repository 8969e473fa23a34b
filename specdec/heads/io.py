"""Saving and loading trained drafters: `config.json` (kind, shapes, target fingerprint, training record) and
`model.safetensors` (weights, bfloat16 on disk by default; decoding upcasts to the target's dtype)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from specdec.errors import ConfigError, ModelFileError

FORMAT_VERSION = 1


def target_fingerprint(target) -> dict:
    """What a drafter must match: shapes, and a checksum of the embedding (catches a different target)."""
    rt = target.runtime
    return {"name": target.name, "vocab_size": rt.vocab_size, "hidden_size": rt.config.hidden_size,
            "num_layers": rt.config.num_layers,
            "embed_checksum": round(float(rt.embed[:256].double().abs().sum()), 3)}


def target_mismatch(config: dict, target) -> str | None:
    """The first fingerprint entry in which the drafter's target differs from `target`, or None if it is it."""
    want, have = config["target"], target_fingerprint(target)
    for key in ("vocab_size", "hidden_size", "num_layers"):
        if want[key] != have[key]:
            return key
    if abs(want["embed_checksum"] - have["embed_checksum"]) > 1e-3 * max(1.0, abs(want["embed_checksum"])):
        return "embed_checksum"
    return None


def check_target(config: dict, target, where: str) -> None:
    key = target_mismatch(config, target)
    want, have = config["target"], target_fingerprint(target)
    if key == "embed_checksum":
        raise ConfigError(f"drafter {where} was trained for target {want['name']!r}, whose embedding differs from "
                          f"{target.name!r}'s; accepted: a drafter trained for this target")
    if key is not None:
        raise ConfigError(f"drafter {where} was trained for target {want['name']!r} ({key}={want[key]}), "
                          f"not for {target.name!r} ({key}={have[key]}); accepted: a drafter trained for "
                          f"this target (specdec train ... --target {target.name})")


def save_drafter(path: str | Path, kind: str, config: dict, state: dict[str, torch.Tensor], *,
                 dtype: torch.dtype = torch.bfloat16) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
               for k, v in state.items()}
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({"format": FORMAT_VERSION, "kind": kind, **config}, indent=1))
    return path


def load_drafter(path: str | Path, kind: str) -> tuple[dict, dict[str, torch.Tensor]]:
    path = Path(path)
    cfg_file, weights = path / "config.json", path / "model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise ConfigError(f"drafter directory {str(path)!r} lacks config.json or model.safetensors; accepted: a "
                          f"directory written by `specdec train {kind}`")
    try:
        config = json.loads(cfg_file.read_text())
        state = load_file(str(weights))
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad file for the user
        raise ModelFileError(f"drafter files in {str(path)!r} are unreadable ({type(e).__name__}: {e})") from None
    if config.get("kind") != kind:
        raise ConfigError(f"drafter directory {str(path)!r} holds a {config.get('kind')!r} drafter; "
                          f"accepted here: a {kind!r} drafter")
    if config.get("format") != FORMAT_VERSION:
        raise ConfigError(f"drafter directory {str(path)!r} has format {config.get('format')!r}; "
                          f"this specdec reads format {FORMAT_VERSION}")
    return config, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
