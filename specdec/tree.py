"""Token trees as tensors: the attention mask and position ids that score a draft tree in one forward pass."""

from __future__ import annotations

import torch
from torch import Tensor


def tree_inputs(parents: Tensor, start: int) -> tuple[Tensor, Tensor]:
    """Mask and positions for scoring [root, node_0, ..., node_{n-1}] after `start` cached positions.

    parents [n] (-1 = child of the root, parents[i] < i). Returns tree_mask [n+1, n+1] bool (row i may attend
    to column j iff j is i or an ancestor of i; the root is everyone's ancestor) and positions [n+1]
    (start + depth, the root at depth 0).
    """
    n = parents.shape[0]
    mask = torch.zeros(n + 1, n + 1, dtype=torch.bool)
    depth = torch.zeros(n + 1, dtype=torch.long)
    mask[0, 0] = True
    for i, p in enumerate(parents.tolist()):
        row = i + 1
        mask[row] = mask[p + 1]          # the parent's ancestors (the root row when p == -1)
        mask[row, row] = True
        depth[row] = depth[p + 1] + 1
    return mask, depth + start

