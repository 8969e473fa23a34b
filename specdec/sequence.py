"""A request and its running state in the engine: what was asked, where its KV cache lives, what it has emitted.

A `Request` is what a caller submits (prompt ids, limits, sampling, stop strings, its own drafter). The engine
turns it into a `Sequence` when it takes a slot: committed tokens, prefill progress, the target hidden states
its drafter reads, its random stream and seed, and its statistics. `GenerationResult` is what a finished
sequence hands back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from uuid import uuid4

import torch
from torch import Tensor

from specdec.config import SamplingParams
from specdec.drafters.base import NoDraft, Proposer
from specdec.models.runtime import Cache
from specdec.types import GenerationStats, add_ones


@dataclass
class Request:
    prompt_ids: list[int]
    max_new_tokens: int = 128
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: tuple[str, ...] = ()                         # stop strings (the output is cut after the first one)
    drafter: Proposer | None = None                    # this request's own drafter; None: vanilla decoding
    on_tokens: Callable[[list[int]], None] | None = None   # called with each step's emitted tokens
    request_id: str = field(default_factory=lambda: uuid4().hex)
    learn: bool = True                                 # False: drafters that learn from traffic skip this output


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]                   # new tokens only (stop token excluded)
    finish_reason: str                     # "stop" (EOS or stop string), "length" or "abort" (cancelled)
    stats: GenerationStats
    lossy: bool = False                    # True when a lossy verification rule produced this output
    prompt_ids: list[int] = field(default_factory=list)
    request_id: str = ""


class Sequence:
    """A request running in the engine, in slot `slot` of the shared cache (`cache` is that slot's view).

    Until its prompt is in the cache (all but its last token, the first *root*) it is prefilling, a chunk per
    step; then each step drafts, is verified and commits. The cache holds every committed token but the root.
    """

    def __init__(self, request: Request, slot: int, cache: Cache | None, started: float | None = None):
        self.request, self.slot, self.cache = request, slot, cache
        self.drafter = request.drafter or NoDraft()
        seed = request.sampling.seed if request.sampling.seed is not None else fresh_seed()
        self.sampling = replace(request.sampling, seed=seed)      # one seed for the whole request
        self.generator = torch.Generator().manual_seed(seed)
        self.tokens = list(request.prompt_ids)                    # committed tokens, prompt first
        self.new: list[int] = []                                  # emitted tokens (after stop cuts)
        self.prefilled = 0                                        # prompt tokens already in the cache
        self._unseen: list[dict[int, Tensor]] = []     # target states of positions the drafter has not been handed
        self.stats = GenerationStats(prompt_tokens=len(request.prompt_ids))
        self.offered: list[int] = []          # offered[d]: steps whose budget allowed a (d+1)-th draft node
        self.filled: list[int] = []           # filled[d]: of those, steps whose drafter proposed one
        self.draft_sums = [0.0] * 5           # over drafting calls: count, sum k, sum t, sum k^2, sum k t
        self.finish_reason: str | None = None
        self.started = time.perf_counter() if started is None else started     # admission (cache set-up included)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def prefill_left(self) -> int:
        """Prompt tokens (all but the last) not yet in the cache."""
        return len(self.request.prompt_ids) - 1 - self.prefilled

    def count_fill(self, budget: int, nodes: int) -> None:
        """One step's budget and the verifiable nodes its drafter proposed within it (for load-aware budgets: a
        drafter that often proposes fewer nodes than allowed, e.g. prompt lookup without a match, costs fewer
        rows than its budget)."""
        budget = min(budget, 64)
        add_ones(self.offered, budget)
        add_ones(self.filled, min(nodes, budget))

    def count_draft_cost(self, nodes: int, seconds: float) -> None:
        """One drafting call: the verifiable nodes it proposed and the seconds it took (for load-aware budgets)."""
        for i, v in enumerate((1.0, nodes, seconds, nodes * nodes, nodes * seconds)):
            self.draft_sums[i] += v

    def draft_cost(self) -> tuple[float, float]:
        """(seconds a drafting call costs whatever it proposes, seconds per node proposed): a least-squares line
        through this request's calls. A drafter that runs a network before its first node (a feature-level head
        catching up with the accepted tokens) has a large first term, which a per-node average would spread thinly over
        deep drafts and charge too little to a short one. Too few calls, or no spread in their sizes: all per node."""
        n, sk, st, skk, skt = self.draft_sums
        var = skk / n - (sk / n) ** 2 if n else 0.0
        if n < 3 or var < 0.25:
            return 0.0, st / sk if sk else 0.0
        per_node = max((skt / n - sk * st / n / n) / var, 0.0)
        return max(st / n - per_node * sk / n, 0.0), per_node

    def fill_rates(self, depth: int) -> list[float]:
        """Estimated chance that the drafter proposes an i-th node when allowed one, i = 1..depth: (f + 1) / (o +
        1), f of the o steps that allowed it (an optimistic prior: a drafter never seen is assumed to fill)."""
        return [((self.filled[d] if d < len(self.filled) else 0) + 1) /
                ((self.offered[d] if d < len(self.offered) else 0) + 1) for d in range(depth)]

    def add_prefill(self, n: int, hidden: dict[int, Tensor]) -> None:
        """n more prompt tokens are in the cache; hidden: their rows [n, hidden] of the drafter's layers."""
        self.prefilled += n
        self.add_hidden(hidden)
        if not self.prefill_left:
            self.stats.prefill_seconds = time.perf_counter() - self.started

    def add_hidden(self, hidden: dict[int, Tensor]) -> None:
        """Target states [n, hidden] by layer of newly committed positions, after those not yet handed over."""
        if hidden:
            self._unseen.append(hidden)

    def take_hidden(self) -> dict[int, Tensor]:
        """Every target state the drafter has not seen, by layer, in position order; they count as seen now."""
        chunks, self._unseen = self._unseen, []
        if len(chunks) == 1:
            return chunks[0]
        return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]} if chunks else {}

    def emit(self, tokens: list[int], finish: str | None) -> None:
        self.new += tokens
        if tokens and self.request.on_tokens:
            self.request.on_tokens(tokens)
        if finish is not None:
            self.finish(finish)

    def finish(self, reason: str) -> None:
        self.finish_reason = reason

    def result(self, decode: Callable[[list[int]], str], lossy: bool) -> GenerationResult:
        """The finished request's result; its time runs from admission to its decoded text."""
        text = decode(self.new)
        self.stats.new_tokens, self.stats.seconds = len(self.new), time.perf_counter() - self.started
        return GenerationResult(text, self.new, self.finish_reason or "abort", self.stats, lossy,
                                list(self.request.prompt_ids), self.request_id)


def fresh_seed() -> int:
    """A seed from OS entropy (62 bits), for a request that brings none: the process-wide RNG is never used."""
    return int.from_bytes(os.urandom(8), "little") >> 2


def cut_at_stop(step_tokens: list[int], new: list[int], max_new: int, stop: tuple[str, ...], eos: set[int],
                decode: Callable[[list[int]], str]) -> tuple[list[int], str | None]:
    """The tokens of this step to emit after `new`, and "stop" / "length" if the request ends within them (None
    if it goes on). An end-of-sequence token is not emitted; a stop string's last token is."""
    found = bool(stop) and any(s in decode(new + step_tokens) for s in stop)   # one decode per step at most,
    for i, tok in enumerate(step_tokens):                                       # more only when a stop is near
        if tok in eos:
            return step_tokens[:i], "stop"
        if found and any(s in decode(new + step_tokens[:i + 1]) for s in stop):
            return step_tokens[:i + 1], "stop"
        if len(new) + i + 1 >= max_new:
            return step_tokens[:i + 1], "length"
    return step_tokens, None
