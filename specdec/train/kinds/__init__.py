"""Trained drafter kinds by name: the one place training learns what a kind is (base.TrainedKind).

Each built-in kind is one file in this package that registers itself (eagle.py, medusa.py, distilled.py); a kind
defined elsewhere (a plugin, a test) registers the same way, before it is used:

    register_kind(MyKind())          # then: train_drafter("mine", ...), `specdec train mine` if registered first
    get_kind("mine")                 # unknown name: ConfigError naming the accepted kinds
    unregister_kind("mine")
"""

from __future__ import annotations

import importlib

from specdec.errors import ConfigError
from specdec.train.kinds.base import TrainedKind

_KINDS: dict[str, TrainedKind] = {}


def register_kind(kind: TrainedKind) -> TrainedKind:
    if not isinstance(kind, TrainedKind):
        raise TypeError(f"register_kind takes a TrainedKind instance, not {kind!r}")
    if kind.name in _KINDS:
        raise ConfigError(f"drafter kind {kind.name!r} is registered already; accepted: a new name")
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    _KINDS.pop(name, None)


def get_kind(name: str) -> TrainedKind:
    _load_builtin()
    if name not in _KINDS:
        raise ConfigError(f"drafter kind {name!r} is unknown; accepted: {', '.join(kind_names())}")
    return _KINDS[name]


def kind_names() -> list[str]:
    _load_builtin()
    return sorted(_KINDS)


def kinds() -> list[TrainedKind]:
    """Every registered kind, by name."""
    return [_KINDS[name] for name in kind_names()]


def _load_builtin() -> None:
    """Import every kind module in this package; each registers itself (once: Python imports a module once)."""
    import pkgutil
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


__all__ = ["TrainedKind", "get_kind", "kind_names", "kinds", "register_kind", "unregister_kind"]
