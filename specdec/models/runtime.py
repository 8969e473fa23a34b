"""What the engine and drafters need from a model runtime, whichever implements it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor


@dataclass
class ForwardOutput:
    logits: Tensor | None                                     # [batch, t, vocab] (or [batch, 1, vocab] for "last")
    hidden: dict[int, Tensor] = field(default_factory=dict)   # layer index -> [batch, t, hidden]; -1 = final normed


class Cache(Protocol):
    length: int

    def rollback(self, n: int) -> None: ...
    def crop(self, length: int) -> None: ...
    def keep(self, start: int, indices: Tensor | list[int]) -> None: ...


class DecoderRuntime(Protocol):
    """A causal LM that scores new tokens against a cache.

    ``supports_tree`` says whether ``forward`` honours ``positions`` and ``tree_mask`` (token trees in one pass);
    ``layers`` (a subset of layers to run, for self-speculation) is honoured by the native runtime only.
    Input tensors may live on any device: ``forward`` moves them to ``device``; outputs live on ``device``.
    Decoding uses batch 1; a cache made for batch b scores b right-padded sequences at once (feature extraction).
    """

    vocab_size: int
    max_context: int
    num_layers: int
    device: torch.device
    dtype: torch.dtype
    supports_tree: bool

    def new_cache(self, capacity: int, batch: int = 1) -> Cache: ...

    def forward(self, input_ids: Tensor, cache: Cache, *, positions: Tensor | None = None,
                tree_mask: Tensor | None = None, logits: str = "all",
                hidden_layers: tuple[int, ...] = (), layers: tuple[int, ...] | None = None) -> ForwardOutput: ...
