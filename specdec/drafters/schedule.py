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


class AcceptanceByDepth:
    """This request's record of how deep drafts were accepted, as a confidence for each draft node (Draft.confidence).

    A node at depth d is estimated to be accepted with probability (h_d + 1) / (n_d + 2): n_d steps proposed a
    node at depth d, h_d of them accepted d tokens or more (the mean of a uniform prior updated by those steps).
    Estimates are cut to never exceed a shallower depth's, since a node is accepted only with its parent.
    """

    def __init__(self) -> None:
        self.hits: list[int] = []
        self.tries: list[int] = []

    def reset(self) -> None:
        self.hits, self.tries = [], []

    def update(self, n_accepted: int, proposed_depth: int) -> None:
        while len(self.tries) < proposed_depth:
            self.tries.append(0)
            self.hits.append(0)
        for d in range(proposed_depth):
            self.tries[d] += 1
            self.hits[d] += n_accepted > d

    def estimates(self, depth: int) -> list[float]:
        """Estimated acceptance at depths 1..depth."""
        out, cap = [], 1.0
        for d in range(depth):
            h, n = (self.hits[d], self.tries[d]) if d < len(self.tries) else (0, 0)
            cap = min(cap, (h + 1) / (n + 2))
            out.append(cap)
        return out
