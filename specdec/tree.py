"""Token trees as tensors: the attention mask and position ids that score a draft tree in one forward pass."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor


def tree_inputs(parents: Tensor, start: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Mask and positions for scoring [root, node_0, ..., node_{n-1}] after `start` cached positions.

    parents [n] (-1 = child of the root, parents[i] < i). Returns tree_mask [n+1, n+1] bool (row i may attend
    to column j iff j is i or an ancestor of i; the root is everyone's ancestor) and positions [n+1]
    (start + depth, the root at depth 0), both on `device` (default: the CPU). The mask and the depths are built
    once per tree shape and device and reused (drafters with a static tree propose the same shape every step),
    so the mask is shared: read it, never write to it.
    """
    mask, depth = _shape_inputs(tuple(parents.tolist()), str(torch.device(device or "cpu")))
    return mask, depth + start


@lru_cache(maxsize=256)
def _shape_inputs(parents: tuple[int, ...], device: str) -> tuple[Tensor, Tensor]:
    """(tree mask [n+1, n+1], depths [n+1]) of one tree shape, on `device`."""
    n = len(parents)
    mask = torch.zeros(n + 1, n + 1, dtype=torch.bool)
    depth = torch.zeros(n + 1, dtype=torch.long)
    mask[0, 0] = True
    for i, p in enumerate(parents):
        row = i + 1
        mask[row] = mask[p + 1]          # the parent's ancestors (the root row when p == -1)
        mask[row, row] = True
        depth[row] = depth[p + 1] + 1
    return mask.to(device), depth.to(device)
