"""The drafting methods a server loaded at start, and a drafter of one of them for each request.

Each method is built once (weights, datastores, measured costs) as a prototype; a request gets
`prototype.fork()`, its own per-request state over the shared parts. "vanilla" is no drafter at all."""

from __future__ import annotations

from collections.abc import Callable

from specdec.drafters import Proposer, is_method, make_drafter, takes_option
from specdec.errors import ConfigError


def method_list(values: list[str]) -> list[str]:
    """`--method a --method b,c` -> [a, b, c] in order, without repeats; nothing given: [vanilla]."""
    names: list[str] = []
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                raise ConfigError(f"--method {value!r} has an empty name; accepted: names separated by commas")
            if not is_method(name):
                make_drafter(name, None)          # raises the registry's one-sentence error for this name
            if name not in names:
                names.append(name)
    return names or ["vanilla"]


class Methods:
    """Loaded methods by name, the first being the default."""

    def __init__(self, builders: dict[str, Callable[[], Proposer | None]]):
        if not builders:
            raise ConfigError("no drafting method is loaded; accepted: at least one (vanilla, pld, ...)")
        self._builders = dict(builders)

    @classmethod
    def load(cls, names: list[str], target, options: dict | None = None, defaults: dict | None = None) -> Methods:
        """Build each method once for `target`; options go to every method but vanilla; `defaults` (e.g.
        fit=False under load-aware budgets) go to the methods that take them, unless options set them."""
        return cls({name: _builder(name, target, options or {}, defaults or {}) for name in names})

    @classmethod
    def from_prototypes(cls, prototypes: dict[str, Proposer | None]) -> Methods:
        """Methods from drafters already built (None = vanilla); each request gets a fork."""
        return cls({name: (lambda p=p: None if p is None else p.fork()) for name, p in prototypes.items()})

    @property
    def names(self) -> list[str]:
        return list(self._builders)

    def drafter(self, name: str) -> Proposer | None:
        """A drafter of method `name` for one request (None: vanilla)."""
        return self._builders[name]()


def _builder(name: str, target, options: dict, defaults: dict) -> Callable[[], Proposer | None]:
    if name == "vanilla":
        return lambda: None
    prototype = _with_defaults(name, target, options, defaults)
    if hasattr(prototype, "fork"):
        return prototype.fork
    return lambda: make_drafter(name, target, options)      # a plug-in without fork(): built per request



def _with_defaults(name: str, target, options: dict, defaults: dict) -> Proposer:
    """The method with those `defaults` it takes (never overriding `options`)."""
    extra = {k: v for k, v in defaults.items() if k not in options and takes_option(name, k)}
    return make_drafter(name, target, {**options, **extra})
