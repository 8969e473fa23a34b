"""Padded batches of training sequences, in a seeded order that a resumed run reproduces exactly.

The sequences live in a `SequenceStore`: flat tensors on the training device, from which a batch is gathered
with a few tensor operations. Collating on the host (one copy per sequence, then a pageable host-to-device copy of
~60 MB of float32 features per 8,192-token batch) took most of a 62-110 ms training step on an H200 whose own
work was about 10 ms (profile in docs/results/2026-11-27-h200).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from specdec.train.features import Sequence


@dataclass
class Batch:
    tokens: Tensor          # [b, t] int64 (0 after a sequence's end)
    features: Tensor        # [b, t, hidden] float32
    valid: Tensor           # [b, t] bool
    prompt_lens: Tensor     # [b] int64
    extras: Tensor | None = None    # [b, t, extra layers, hidden] float32 (fused EAGLE heads only)

    @property
    def lengths(self) -> Tensor:
        return self.valid.sum(1)


def crop(seq: Sequence, keep_prompt: int | None) -> Sequence:
    """Drop all but the last keep_prompt prompt tokens. The target's features there were computed over the
    whole prompt, so they still carry it; heads only lose attention to far prompt positions."""
    if keep_prompt is None or seq.prompt_len <= keep_prompt:
        return seq
    cut = seq.prompt_len - keep_prompt
    return Sequence(seq.tokens[cut:], seq.features[cut:], keep_prompt, None if seq.extras is None else seq.extras[cut:])


class SequenceStore:
    """Sequences (cropped to keep_prompt prompt tokens) as flat tensors on `device`, features kept in float16,
    with one zero row at the end that padding positions point to. batch(indices) gathers a right-padded Batch
    there: zeros after each sequence's end, features float32."""

    def __init__(self, seqs: list[Sequence], keep_prompt: int | None, device: torch.device | str):
        seqs = [crop(s, keep_prompt) for s in seqs]
        self.device = torch.device(device)
        self.lengths = [len(s.tokens) for s in seqs]
        self.pad = sum(self.lengths)                                      # index of the zero row

        def flat(parts: list[Tensor]) -> Tensor:
            return torch.cat(parts + [torch.zeros_like(parts[0][:1])]).to(self.device)

        self.tokens = flat([s.tokens for s in seqs])
        self.features = flat([s.features for s in seqs])
        self.extras = None if not seqs or seqs[0].extras is None else flat([s.extras for s in seqs])
        self.starts = torch.tensor([0] + self.lengths[:-1]).cumsum(0).to(self.device)
        self.sizes = torch.tensor(self.lengths, device=self.device)
        self.prompt_lens = torch.tensor([s.prompt_len for s in seqs], device=self.device)

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, indices: list[int]) -> Batch:
        b, t = len(indices), max(self.lengths[i] for i in indices)       # from the host copy: no device round trip
        rows = torch.tensor(indices, device=self.device)
        pos = torch.arange(t, device=self.device)
        valid = pos < self.sizes[rows, None]                              # [b, t]
        where = torch.where(valid, self.starts[rows, None] + pos, self.pad).flatten()
        gather = lambda x: x.index_select(0, where).view(b, t, *x.shape[1:])  # noqa: E731
        extras = None if self.extras is None else gather(self.extras).float()
        return Batch(gather(self.tokens), gather(self.features).float(), valid, self.prompt_lens[rows], extras)


def reference_batch(seqs: list[Sequence], keep_prompt: int | None) -> Batch:
    """The same batch built one sequence at a time on the host (zeroed float32 tensors, one copy per sequence): the
    reference SequenceStore.batch is tested against."""
    seqs = [crop(s, keep_prompt) for s in seqs]
    t, b, h = max(len(s.tokens) for s in seqs), len(seqs), seqs[0].features.shape[1]
    tokens, feats = torch.zeros(b, t, dtype=torch.long), torch.zeros(b, t, h)
    valid = torch.zeros(b, t, dtype=torch.bool)
    extras = None if seqs[0].extras is None else torch.zeros(b, t, *seqs[0].extras.shape[1:])
    for i, s in enumerate(seqs):
        n = len(s.tokens)
        tokens[i, :n], feats[i, :n], valid[i, :n] = s.tokens, s.features.float(), True
        if extras is not None:
            extras[i, :n] = s.extras.float()
    return Batch(tokens, feats, valid, torch.tensor([s.prompt_len for s in seqs]), extras)


def batch_plan(lengths: list[int], token_budget: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches: a seeded shuffle, then sequences of similar length grouped (chunks of 32 sorted by
    length) and cut so batch size x longest sequence stays within token_budget."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=g).tolist()
    chunks = [sorted(order[i:i + 32], key=lambda j: lengths[j]) for i in range(0, len(order), 32)]
    plan: list[list[int]] = []
    for chunk in chunks:
        cur: list[int] = []
        for j in chunk:
            longest = max([lengths[k] for k in cur] + [lengths[j]])
            if cur and longest * (len(cur) + 1) > token_budget:
                plan.append(cur)
                cur = []
            cur.append(j)
        if cur:
            plan.append(cur)
    perm = torch.randperm(len(plan), generator=g).tolist()
    return [plan[i] for i in perm]
