"""Finding and loading trained drafters: an explicit directory, or the one shipped for the target; the network
is rebuilt by its kind (specdec/train/kinds/) and placed beside the target.

Shipped drafters live in specdec/data/drafters/<registry name>/<kind>/ (config.json + model.safetensors). A target
loaded by another name (the registry model's .gguf file by path, say) finds its shipped drafter by fingerprint.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch

from specdec.errors import ConfigError
from specdec.heads.io import check_target, load_drafter, target_mismatch


def shipped_drafter(target, kind: str) -> Path | None:
    """The drafter of this kind shipped for the target: by registry name, else the one whose recorded target
    fingerprint (shapes and embedding checksum) is this target's."""
    root = Path(str(resources.files("specdec") / "data" / "drafters"))
    named = root / target.name / kind
    if "/" not in target.name and (named / "config.json").is_file():
        return named
    for config in sorted(root.glob(f"*/{kind}/config.json")):
        try:
            if target_mismatch(json.loads(config.read_text()), target) is None:
                return config.parent
        except (AttributeError, KeyError):      # a runtime without a native fingerprint (transformers adapter)
            return None
    return None


def resolve(target, kind: str, drafter: str | None) -> tuple[dict, dict[str, torch.Tensor], str]:
    """(config, weights, where) of the drafter to use, checked against the target."""
    path = Path(drafter) if drafter else shipped_drafter(target, kind)
    if path is None:
        raise ConfigError(f"no {kind} drafter ships for target {target.name!r}; train one with `specdec train "
                          f"{kind} --target {target.name} --data PATH --out DIR` and pass -o drafter=DIR")
    if not path.exists():
        raise ConfigError(f"drafter directory {str(path)!r} does not exist; accepted: a directory written by "
                          f"`specdec train {kind}`")
    config, state = load_drafter(path, kind)
    check_target(config, target, str(path))
    return config, state, str(path)


def load_trained(target, kind: str, drafter: str | None) -> tuple[torch.nn.Module, dict, str]:
    """(network, config, where) of the trained drafter to decode with: resolved and checked against the target,
    rebuilt by its kind, placed beside the target."""
    from specdec.train.kinds import get_kind
    config, state, where = resolve(target, kind, drafter)
    return place(get_kind(kind).load(config, state), target), config, where


def place(net: torch.nn.Module, target) -> torch.nn.Module:
    """A loaded drafter network on the target's device and in its dtype; beside a q4 target (CPU), its linear
    layers compute in 4 bits too: a trained head drafts at a third to half of a q4 target step's cost otherwise,
    and draft precision costs acceptance only, never correctness."""
    rt = target.runtime
    net = net.to(device=rt.device, dtype=rt.dtype)
    if getattr(rt, "quant", None) == "q4":
        from specdec.models.quant import quantize_linears
        quantize_linears(net)
    return net
