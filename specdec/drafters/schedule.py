"""Draft-length schedules shared by drafters: fixed, or adaptive (+2 after a fully accepted draft, -1 otherwise)."""

from __future__ import annotations

from dataclasses import dataclass

from specdec.errors import ConfigError


@dataclass
class DraftLength:
    length: int = 8
    adaptive: bool = True
    minimum: int = 1
    maximum: int = 16
    grow: int = 2
    shrink: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.length <= self.maximum:
            raise ConfigError(f"draft length {self.length} must lie in [{self.minimum}, {self.maximum}] "
                              f"with minimum >= 1")
        self.initial = self.length

    def reset(self) -> None:
        """A new request starts from the configured length: one request's text never shapes another's drafts
        (results do not depend on the order of requests, and replays of a run are exact)."""
        self.length = self.initial

    def update(self, n_accepted: int, proposed_depth: int) -> None:
        """After a step whose draft reached `proposed_depth` and kept `n_accepted` tokens."""
        if not self.adaptive or proposed_depth == 0:
            return
        if n_accepted >= proposed_depth:
            self.length = min(self.maximum, self.length + self.grow)
        else:
            self.length = max(self.minimum, self.length - self.shrink)

