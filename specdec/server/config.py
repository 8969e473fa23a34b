"""The settings of one server: the engine's limits and the HTTP layer's own (queue, defaults, key, drain)."""

from __future__ import annotations

from dataclasses import dataclass

from specdec.errors import ConfigError
from specdec.verify import VERIFY_RULES


SPECULATION = ("load-aware", "fixed")


@dataclass(frozen=True)
class ServerConfig:
    served_model_name: str                 # the `model` clients send and /v1/models lists
    max_num_seqs: int = 16                 # requests decoded together (KV slots)
    max_num_batched_tokens: int = 512      # rows of one target pass (decode rows, draft nodes, prompt chunks)
    max_model_len: int | None = None       # prompt + completion tokens per request; None: the model's window
    rule: str = "exact"                    # verification rule
    max_queue: int = 256                   # requests waiting for a slot before new ones get 429
    default_max_tokens: int = 256          # completion tokens when a request names none (capped by the context)
    api_key: str | None = None             # when set, /v1 routes need `Authorization: Bearer <key>`
    drain_timeout: float = 30.0            # seconds in-flight requests get at shutdown before they are aborted
    speculation: str = "load-aware"        # "load-aware": draft budgets per step from the measured cost surface;
                                           # "fixed": every method drafts as its own options say

    def __post_init__(self) -> None:
        for name in ("max_num_seqs", "max_num_batched_tokens", "default_max_tokens"):
            _positive_int(name, getattr(self, name))
        if self.max_model_len is not None:
            _positive_int("max_model_len", self.max_model_len)
        if isinstance(self.max_queue, bool) or not isinstance(self.max_queue, int) or self.max_queue < 0:
            raise ConfigError(f"max_queue={self.max_queue!r} is invalid; accepted: an integer >= 0")
        if not isinstance(self.drain_timeout, (int, float)) or self.drain_timeout < 0:
            raise ConfigError(f"drain_timeout={self.drain_timeout!r} is invalid; accepted: seconds >= 0")
        if self.rule not in VERIFY_RULES:
            raise ConfigError(f"rule={self.rule!r} is unknown; accepted: {', '.join(sorted(VERIFY_RULES))}")
        if self.speculation not in SPECULATION:
            raise ConfigError(f"speculation={self.speculation!r} is unknown; accepted: {', '.join(SPECULATION)}")
        if not self.served_model_name:
            raise ConfigError("served_model_name is empty; accepted: a non-empty name")
        if self.api_key is not None and not self.api_key:
            raise ConfigError("api_key is empty; accepted: a non-empty key, or none")

    @property
    def engine_options(self) -> dict:
        return {"rule": self.rule, "max_num_seqs": self.max_num_seqs,
                "max_num_batched_tokens": self.max_num_batched_tokens, "max_model_len": self.max_model_len}


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} is invalid; accepted: an integer >= 1")
