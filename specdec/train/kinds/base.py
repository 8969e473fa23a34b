"""What a trained drafter kind declares, in one place: its training options, its network (fresh from the target,
or rebuilt from a saved drafter), its objective, the target layers it reads, and its decoding defaults.

A kind's training options are a frozen dataclass whose fields are made with `option()`: a default, a help line
and a parser. `specdec train` turns each field into a flag (`fuse_layers` -> `--fuse-layers`); a library caller
passes them by name in `TrainSettings.options`; `resolve_options` parses the given ones over the defaults. Kinds
may share an option (one flag serves both); a name must not be one of TrainSettings' own (steps, seed, ...).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from specdec.errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor, nn

    from specdec.train.objective import Objective

Parse = Callable[[str, Any], Any]           # (option name, given value) -> value, or ConfigError


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--{_flag(name)}={value} is invalid; accepted: an integer >= 1")
    return value


def number(name: str, value: Any) -> float:
    """Any real number (a kind's `check` bounds it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"--{_flag(name)}={value!r} is invalid; accepted: a number")
    return value


def layer_list(name: str, value: Any) -> tuple[int, ...]:
    """Target layer indices: a tuple or list, or comma-separated text as on the command line ("2,15")."""
    if not isinstance(value, str):
        return tuple(value)
    try:
        return tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--{_flag(name)}={value!r} is invalid; accepted: comma-separated layer indices, "
                          f"e.g. 2,15") from None


def option(default: Any, help: str, *, type: type = int, parse: Parse = positive_int) -> Any:  # noqa: A002
    """A field of a kind's options dataclass. `type` converts the command-line text (argparse); `parse` checks
    and normalises a given value (from the command line or a library caller)."""
    return field(default=default, metadata={"help": help, "type": type, "parse": parse})


@dataclass(frozen=True)
class NoOptions:
    """The options of a kind that has none."""


class TrainedKind(ABC):
    """One kind of trained drafter. Subclass it in one file, set the class attributes, and register an instance
    with specdec.train.kinds.register_kind. Decoding: the drafter method of the same name (specdec/drafters/)
    loads the saved drafter with specdec.drafters.trained.load_trained, which calls `load`."""

    name: str                               # the kind, as in `specdec train NAME` and config.json's "kind"
    description: str                        # one line for --help
    options: type = NoOptions               # frozen dataclass of training options, fields made with option()
    decode_defaults: dict = {}              # written to config.json; the drafter method's defaults

    def for_target(self, options: Any, target) -> Any:
        """The options with defaults that depend on the target filled in (default: as given)."""
        return options

    def check(self, options: Any, target) -> None:
        """Refuse options that do not fit each other or the target: a ConfigError, before any data work."""

    def target_layers(self, options: Any, target) -> tuple[int, ...]:
        """Target layers (0-based) whose residual streams the features must carry besides the final feature
        (Sequence.extras, Batch.extras)."""
        return ()

    def shape(self, config: dict) -> dict:
        """The options a saved drafter (its config.json) fixes besides draft_vocab: a run starting from it
        (--init) must ask for the same values."""
        return {}

    @abstractmethod
    def network(self, target, token_ids: Tensor, options: Any) -> nn.Module:
        """A fresh float32 network on the CPU, initialised from the target; token_ids [draft vocab]: the target
        token of each draft index."""

    @abstractmethod
    def objective(self, net: nn.Module, target, token_ids: Tensor, options: Any) -> Objective:
        """The objective training `net` (already on the target's device)."""

    @abstractmethod
    def load(self, config: dict, state: dict[str, Tensor]) -> nn.Module:
        """The network of a saved drafter (config.json and its weights), for decoding or to train on (--init).
        Like `network`'s, it has a `token_ids` buffer [draft vocab] (a run from it keeps its draft vocabulary)."""


def resolve_options(kind: TrainedKind, given: dict) -> Any:
    """The kind's options: the given ones it declares (parsed), its defaults for the rest. Options that other
    kinds declare are ignored (the command line offers every kind's flags)."""
    declared = {f.name: f for f in fields(kind.options)}
    return kind.options(**{k: declared[k].metadata["parse"](k, v) for k, v in given.items() if k in declared})


def _flag(name: str) -> str:
    return name.replace("_", "-")
