"""Drafters by name. Every method is one file behind the `Proposer` protocol, registered here.

`make_drafter(method, target, options)` builds one; a method may also be given as ``package.module:factory``
to plug in a drafter that lives outside specdec (the factory takes the same arguments). Whatever a factory
returns is checked against the protocol, so a plug-in that lacks a method fails when it is built, by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from specdec.drafters.base import DecodeState, NoDraft, Proposer
from specdec.errors import ConfigError

Factory = Callable[..., Proposer]           # factory(target: LoadedModel, **options) -> Proposer
DRAFTERS: dict[str, Factory] = {}
DESCRIPTIONS: dict[str, str] = {}


def register(name: str, description: str):
    def wrap(factory: Factory) -> Factory:
        DRAFTERS[name] = factory
        DESCRIPTIONS[name] = description
        return factory
    return wrap


register("vanilla", "no drafter: one target forward per token (the baseline)")(lambda target, **_: NoDraft())


def _load_builtin() -> None:
    """Import every method module in this package; each registers itself with @register."""
    import pkgutil
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "schedule"):
            importlib.import_module(f"{__name__}.{info.name}")


def method_names() -> list[str]:
    _load_builtin()
    return sorted(DRAFTERS)


def is_method(method: str) -> bool:
    """A registered name, package.module:factory, or a union of them joined by '+' (eagle+pld)."""
    _load_builtin()
    return all(m in DRAFTERS or ":" in m for m in method.split("+"))


def takes_option(method: str, key: str) -> bool:
    """Whether `method` accepts option `key` (a union takes only its own, `fit`, unscoped)."""
    import inspect
    if "+" in method:
        return key == "fit"
    params = inspect.signature(_factory(method)).parameters.values()
    return any(p.name == key or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def make_drafter(method: str, target, options: dict | None = None) -> Proposer:
    _load_builtin()
    options = options or {}
    if "+" in method:
        from specdec.drafters.union import make_union
        return make_union(target, method.split("+"), options, make_drafter)
    factory = _factory(method)
    try:
        drafter = factory(target, **options)
    except TypeError as e:
        raise ConfigError(f"bad option for method {method!r}: {e}") from None
    return check_proposer(drafter, method)


def _factory(method: str) -> Factory:
    _load_builtin()
    if method in DRAFTERS:
        return DRAFTERS[method]
    if ":" in method:
        module, _, attr = method.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"method {method!r} could not be imported ({e}); accepted: "
                              f"{', '.join(method_names())} or package.module:factory") from None
    raise ConfigError(f"method {method!r} is unknown; accepted: {', '.join(method_names())} "
                      f"or package.module:factory, or several joined by '+' (eagle+pld)")


PROPOSER_MEMBERS = {"hidden_layers": "hidden_layers", "begin": "begin(prompt_ids)", "propose": "propose(state)",
                    "on_accept": "on_accept(result)"}


def check_proposer(drafter, method: str) -> Proposer:
    """`drafter` if it has what the `Proposer` protocol asks for; else one ConfigError naming what it lacks."""
    missing = [name for name in PROPOSER_MEMBERS if not hasattr(drafter, name)
               or (name != "hidden_layers" and not callable(getattr(drafter, name)))]
    if missing:
        raise ConfigError(f"drafter from {method!r} lacks {', '.join(missing)}; accepted: an object with "
                          f"{', '.join(PROPOSER_MEMBERS.values())}")
    return drafter


__all__ = ["DRAFTERS", "DecodeState", "NoDraft", "Proposer", "is_method", "make_drafter", "method_names", "register"]
