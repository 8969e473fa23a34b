"""Padded batches of training sequences, in a seeded order that a resumed run reproduces exactly."""

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

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(None if getattr(self, f) is None else getattr(self, f).to(device, non_blocking=True)
                       for f in ("tokens", "features", "valid", "prompt_lens", "extras")))


def crop(seq: Sequence, keep_prompt: int | None) -> Sequence:
    """Drop all but the last keep_prompt prompt tokens. The target's features there were computed over the
    whole prompt, so they still carry it; heads only lose attention to far prompt positions."""
    if keep_prompt is None or seq.prompt_len <= keep_prompt:
        return seq
    cut = seq.prompt_len - keep_prompt
    return Sequence(seq.tokens[cut:], seq.features[cut:], keep_prompt, None if seq.extras is None else seq.extras[cut:])


def collate(seqs: list[Sequence], keep_prompt: int | None = None) -> Batch:
    seqs = [crop(s, keep_prompt) for s in seqs]
    t = max(len(s.tokens) for s in seqs)
    b, h = len(seqs), seqs[0].features.shape[1]
    tokens = torch.zeros(b, t, dtype=torch.long)
    feats = torch.zeros(b, t, h)
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
