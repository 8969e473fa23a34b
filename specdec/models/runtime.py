"""What the engine and drafters need from a model runtime, whichever implements it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@dataclass
class ForwardOutput:
    logits: Tensor | None                                     # [batch, t, vocab] (or [batch, 1, vocab] for "last")
    hidden: dict[int, Tensor] = field(default_factory=dict)   # layer index -> [batch, t, hidden]; -1 = final normed


@dataclass
class Segment:
    """One sequence's new tokens in a batched pass (`forward_batch`): the rows of several requests are scored in
    one pass, each against its own cache (a slot of a shared `KVCache`, see `KVCache.slot`)."""

    input_ids: Tensor                     # [batch, t]; batch > 1 only when the segment is alone in its pass
    cache: Cache                          # this sequence's cache; the new tokens go after its `length`
    positions: Tensor | None = None       # [t] position ids (default: length, length + 1, ...)
    tree_mask: Tensor | None = None       # [t, t] bool: which new tokens each new token may attend to
    logits: str = "all"                   # "all", "last" or "none"

    @property
    def rows(self) -> int:
        return int(self.input_ids.shape[1])


@runtime_checkable
class Cache(Protocol):
    length: int

    def rollback(self, n: int) -> None: ...
    def crop(self, length: int) -> None: ...
    def keep(self, start: int, indices: Tensor | list[int]) -> None: ...


@runtime_checkable
class DecoderRuntime(Protocol):
    """A causal LM that scores new tokens against a cache.

    ``supports_tree`` says whether ``forward`` honours ``positions`` and ``tree_mask`` (token trees in one pass);
    ``layers`` (a subset of layers to run, for self-speculation) is honoured by the native runtime only.
    Input tensors may live on any device: ``forward`` moves them to ``device``; outputs live on ``device``.
    ``forward`` scores one sequence (or, with a cache made for batch b, b right-padded sequences at once: feature
    extraction); ``forward_batch`` scores several sequences' new tokens in one pass, each against its own cache
    (``supports_batch``: in one pass; otherwise one sequence after another, same results).
    """

    vocab_size: int
    max_context: int
    num_layers: int
    device: torch.device
    dtype: torch.dtype
    supports_tree: bool
    supports_batch: bool

    def new_cache(self, capacity: int, batch: int = 1) -> Cache: ...

    def new_slots(self, capacity: int, count: int) -> list[Cache]:
        """`count` caches of one sequence each, for requests decoded together (one shared buffer where the
        runtime has one)."""
        ...

    def forward(self, input_ids: Tensor, cache: Cache, *, positions: Tensor | None = None,
                tree_mask: Tensor | None = None, logits: str = "all",
                hidden_layers: tuple[int, ...] = (), layers: tuple[int, ...] | None = None) -> ForwardOutput: ...

    def forward_batch(self, segments: list[Segment], *, hidden_layers: tuple[int, ...] = (),
                      layers: tuple[int, ...] | None = None) -> list[ForwardOutput]: ...
