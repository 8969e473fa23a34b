"""Small frozen configs shared across layers. Each component takes its own config, never a global one."""

from __future__ import annotations

import math
from dataclasses import dataclass

from specdec.errors import ConfigError


def _check_number(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False,
                  accepted: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{name}={value!r} is not a number; accepted: {accepted}.")
    if value < lo or value > hi or (lo_open and value == lo):
        raise ConfigError(f"{name}={value!r} is out of range; accepted: {accepted}.")


@dataclass(frozen=True)
class SamplingParams:
    """How the target's next-token distribution is shaped before sampling or verification.

    temperature == 0 means greedy decoding (argmax); top_k == 0, top_p == 1 and min_p == 0 switch those
    filters off. The same transform is applied to target and drafter distributions.
    """

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        _check_number("temperature", self.temperature, 0.0, 100.0,
                      accepted="0 (greedy) or a positive number up to 100")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"top_k={self.top_k!r} is invalid; accepted: an integer >= 0 (0 = off).")
        _check_number("top_p", self.top_p, 0.0, 1.0, lo_open=True, accepted="a number in (0, 1] (1 = off)")
        _check_number("min_p", self.min_p, 0.0, 1.0, accepted="a number in [0, 1) (0 = off)")
        if self.min_p >= 1.0:
            raise ConfigError(f"min_p={self.min_p!r} is out of range; accepted: a number in [0, 1) (0 = off).")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or self.seed < 0):
            raise ConfigError(f"seed={self.seed!r} is invalid; accepted: an integer >= 0.")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0
