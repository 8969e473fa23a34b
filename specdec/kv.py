"""Preallocated KV cache with a length pointer.

Keys and values of every layer live in one buffer per layer, indexed by position, so rolling back a rejected
draft is moving the pointer (`rollback`), and keeping the accepted path of a token tree is one gather that
moves those entries into contiguous slots (`keep`).
"""

from __future__ import annotations

import torch
from torch import Tensor


class KVCache:
    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, capacity: int, *,
                 batch: int = 1, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        shape = (num_layers, batch, num_kv_heads, capacity, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)   # [layers, batch, kv_heads, capacity, head_dim]
        self.v = torch.zeros(shape, dtype=dtype, device=device)   # [layers, batch, kv_heads, capacity, head_dim]
        self.capacity = capacity
        self.length = 0
        self.pool: KVCache | None = None    # for a slot: the cache whose buffers it lives in, and its row there
        self.index = 0

    def slot(self, index: int) -> KVCache:
        """A cache of one sequence, stored in row `index` of this cache's buffers (no copy), with its own length.

        A batch of requests shares one preallocated buffer of `batch` slots; each request decodes against its
        slot as if it were a cache of its own (`forward`, rollback, keep), and a batched pass writes every
        request's rows into its own slot.
        """
        if not 0 <= index < self.k.shape[1]:
            raise IndexError(f"slot {index} is out of range; accepted: 0 to {self.k.shape[1] - 1}")
        view = KVCache.__new__(KVCache)
        view.k, view.v = self.k[:, index:index + 1], self.v[:, index:index + 1]   # [layers, 1, kv_heads, cap, d]
        view.capacity, view.length = self.capacity, 0
        view.pool, view.index = self, index
        return view

    def write(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v [batch, kv_heads, t, head_dim] at positions length..length+t; return all keys/values so far.

        The pointer itself moves in `advance`, once per forward pass, after every layer has written.
        """
        t = k.shape[2]
        end = self.length + t
        if end > self.capacity:
            raise RuntimeError(f"KV cache overflow: {end} positions needed, capacity {self.capacity}")
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, t: int) -> None:
        self.length += t

    def rollback(self, n: int) -> None:
        """Forget the last n positions."""
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot roll back {n} of {self.length} cached positions")
        self.length -= n

    def crop(self, length: int) -> None:
        """Keep the first `length` positions."""
        self.rollback(self.length - length)

    def keep(self, start: int, indices: Tensor | list[int]) -> None:
        """Keep positions start + indices (ascending, relative to start) as start, start+1, ...; drop the rest.

        Used after tree verification: the accepted root path's entries move into contiguous slots.
        """
        rel = indices.tolist() if isinstance(indices, Tensor) else list(indices)   # read on the host, once
        n = len(rel)
        if n and (max(rel) >= self.length - start or min(rel) < 0):
            raise ValueError(f"keep indices out of range [{start}, {self.length})")
        if n and rel[0] == 0 and rel[-1] == n - 1:                   # ascending from 0: a prefix (chain), just crop
            self.length = start + n
            return
        if n:
            idx = torch.tensor(rel, dtype=torch.long, device=self.k.device) + start
            self.k[:, :, :, start:start + n] = self.k[:, :, :, idx]
            self.v[:, :, :, start:start + n] = self.v[:, :, :, idx]
        self.length = start + n
