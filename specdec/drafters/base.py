"""The one protocol every drafter implements, and the state the engine hands it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from specdec.config import SamplingParams
from specdec.models.runtime import Cache
from specdec.types import Draft, VerifyResult
from specdec.verify.probs import sample
from specdec.verify.seeded import sample_seeded


@dataclass
class DecodeState:
    """What a drafter may look at when proposing.

    ``tokens``: all committed tokens, prompt first; the last one is the *root* the draft continues.
    ``hidden``: target hidden states (layers the drafter asked for in ``hidden_layers``) at the positions
    committed since the drafter's last call, [k, hidden] each (the prompt after prefill; then the previous root
    and the accepted tokens, of several passes when steps without a draft budget did not call the drafter).
    ``max_depth`` and ``max_nodes`` bound this step's draft (remaining tokens; the draft budget the engine chose
    for this step within the cache room). ``room``: positions the request may still
    add after the root (size a drafter's own caches by it, not by this step's budget).
    ``cache`` is the target's KV cache holding every committed token but the root; a self-speculative drafter
    may run the target on it (e.g. with some layers skipped) but must leave ``cache.length`` as it found it.
    """

    tokens: list[int]
    sampling: SamplingParams
    generator: torch.Generator
    max_depth: int
    max_nodes: int
    hidden: dict[int, Tensor] = field(default_factory=dict)
    cache: Cache | None = None
    room: int | None = None
    noise_seed: int | None = None       # set when the rule samples with position-keyed noise (rule "exact")

    def __post_init__(self) -> None:
        if self.room is None:
            self.room = self.max_nodes

    def sample(self, probs: Tensor, depth: int) -> int:
        """A sampled proposal from probs [vocab] for the node at `depth` (1 = a child of the root). Under
        position-keyed noise it uses the request's noise at that node's position, so it equals the target's own
        sample there whenever both distributions put the noisy argmax on the same token; otherwise it draws
        from the request's generator."""
        if self.noise_seed is None:
            return int(sample(probs, self.generator))
        position = torch.tensor([len(self.tokens) + depth - 1])
        return int(sample_seeded(probs.unsqueeze(0), self.noise_seed, position)[0])


@runtime_checkable
class Proposer(Protocol):
    hidden_layers: tuple[int, ...]       # target hidden states the drafter needs (empty for most)

    def begin(self, prompt_ids: list[int]) -> None:
        """A new request: build caches and indexes for this prompt."""

    def propose(self, state: DecodeState) -> Draft:
        """Draft tokens following state.tokens[-1] (an empty draft is allowed: a plain decoding step)."""

    def on_accept(self, result: VerifyResult) -> None:
        """The verifier's decision on the draft just proposed: roll caches forward / back, adapt the draft length.
        A step that did not call propose (no draft budget) does not call it either."""

    # Optional: end(output_ids: list[int], learn: bool) -- the request ended (not aborted) with these output tokens;
    # a drafter that learns from outputs (suffix) may keep them for later requests unless learn is False.


class Forkable:
    """fork(): a drafter of the same method for another request, so that many requests decode at once.

    The copy shares what is the same for every request (weights, datastores, measured costs, calibrations);
    the attributes named in `per_request`, state that begin(), propose() or on_accept() change in place (an
    adaptive length, an acceptance counter, an n-gram index), are deep-copied. begin() then starts its request.
    State that begin() assigns afresh needs no listing.
    """

    per_request: tuple[str, ...] = ()

    def fork(self):
        new = copy.copy(self)
        for name in self.per_request:
            setattr(new, name, copy.deepcopy(getattr(self, name)))
        return new


class NoDraft(Forkable):
    """Vanilla decoding as a drafter: proposes nothing, so every step is one target token."""

    hidden_layers: tuple[int, ...] = ()

    def begin(self, prompt_ids: list[int]) -> None:
        pass

    def propose(self, state: DecodeState) -> Draft:
        return Draft.chain(torch.zeros(0, dtype=torch.long))

    def on_accept(self, result: VerifyResult) -> None:
        pass
