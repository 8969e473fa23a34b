"""The draft vocabulary: the target tokens a head can propose, chosen by frequency in the training text.

A head scores only these tokens (its output matrix is [draft vocab, hidden] instead of [vocab, hidden]); a token
outside it is never proposed, which costs acceptance only when the target picks it, and never correctness.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import torch
from torch import Tensor


def select_draft_vocab(sequences: Iterable[list[int]], size: int, vocab_size: int,
                       always: Iterable[int] = ()) -> Tensor:
    """The `size` most frequent token ids in `sequences` (ties: lower id first), `always` included; sorted."""
    counts = Counter()
    for seq in sequences:
        counts.update(seq)
    keep = {int(t) for t in always if 0 <= int(t) < vocab_size}
    for tok, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(keep) >= size:
            break
        keep.add(int(tok))
    for tok in range(vocab_size):                 # fewer distinct tokens than `size`: fill with low ids
        if len(keep) >= size:
            break
        keep.add(tok)
    return torch.tensor(sorted(keep), dtype=torch.long)


def coverage(sequences: Iterable[list[int]], token_ids: Tensor) -> float:
    """Fraction of tokens in `sequences` that the draft vocabulary contains."""
    allowed = set(token_ids.tolist())
    total = hit = 0
    for seq in sequences:
        total += len(seq)
        hit += sum(t in allowed for t in seq)
    return hit / total if total else 0.0


def target_to_draft(token_ids: Tensor, vocab_size: int) -> Tensor:
    """[vocab] int64: the draft index of each target token, -1 where it is not in the draft vocabulary."""
    index = torch.full((vocab_size,), -1, dtype=torch.long)
    index[token_ids] = torch.arange(token_ids.numel())
    return index
