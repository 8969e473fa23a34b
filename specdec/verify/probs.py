"""Logits -> probabilities: temperature, top-k, top-p, min-p; and inverse-CDF sampling.

The same transform is applied to the target's and the drafter's logits, so that speculative sampling
reproduces the distribution a user asked for (the *transformed* target distribution).
"""

from __future__ import annotations

import torch
from torch import Tensor

from specdec.config import SamplingParams


def logits_to_probs(logits: Tensor, sampling: SamplingParams) -> Tensor:
    """Turn logits into the sampling distribution; returns float32 probs of the same shape.

    Order: temperature, then top-k (keep the k largest; ties broken by lower index), then top-p (keep the
    smallest set of most likely tokens whose mass >= top_p; the top token always stays), then min-p (keep
    tokens with prob >= min_p * max prob). Temperature 0 (greedy) returns a one-hot of the argmax.
    """
    # logits: [..., vocab]
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape [..., vocab] with vocab >= 1, got {tuple(logits.shape)}.")
    logits = logits.float()
    if sampling.greedy:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    scaled = logits / sampling.temperature                                   # [..., vocab]
    if 0 < sampling.top_k < scaled.shape[-1]:
        scaled = scaled.masked_fill(_ranks(scaled) >= sampling.top_k, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)                                    # [..., vocab]
    if sampling.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
        mass_before = sorted_probs.cumsum(-1) - sorted_probs                 # exclusive cumulative mass
        keep_sorted = mass_before < sampling.top_p                           # rank 0 always kept
        keep = torch.empty_like(keep_sorted).scatter_(-1, order, keep_sorted)
        probs = _renormalise(probs * keep)
    if sampling.min_p > 0.0:
        keep = probs >= sampling.min_p * probs.amax(-1, keepdim=True)
        probs = _renormalise(probs * keep)
    return probs


def _ranks(values: Tensor) -> Tensor:
    """Rank of each entry along the last axis, 0 = largest; equal values ranked by index."""
    # values: [..., vocab]
    order = values.argsort(dim=-1, descending=True, stable=True)
    positions = torch.arange(values.shape[-1], device=values.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def _renormalise(weights: Tensor) -> Tensor:
    # weights: [..., vocab], non-negative with a positive sum per row
    return weights / weights.sum(-1, keepdim=True)


def uniforms_like(shape, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """U(0,1) draws of `shape` on `device`, taken from `generator` on the generator's own device. The engine's
    generator lives on the CPU, so a seed gives the same draws whether the model runs on a CPU or a GPU."""
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=where).to(device)


def sample(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one token per row of ``probs`` [..., vocab] (rows need not be normalised); returns [...]."""
    return sample_from_uniforms(probs, uniforms_like(probs.shape[:-1], generator, probs.device))


def sample_from_uniforms(probs: Tensor, uniforms: Tensor) -> Tensor:
    """Inverse-CDF sampling: the token whose cumulative-mass interval contains ``uniforms * total``.

    ``probs`` [..., vocab] are non-negative weights with a positive sum (normalisation not needed);
    ``uniforms`` [...] lie in [0, 1). Zero-weight tokens are never returned. Returns int64 [...].
    """
    # probs: [..., vocab]; uniforms: [...]
    cdf = probs.cumsum(-1).contiguous()                                      # [..., vocab]
    threshold = uniforms.to(cdf.dtype).unsqueeze(-1) * cdf[..., -1:]         # [..., 1]
    tokens = torch.searchsorted(cdf, threshold, right=True)                  # first index with cdf > threshold
    # Rounding can put threshold at the total: fall back to the last token with positive weight, which is
    # the first index where the cdf reaches the total.
    last_positive = torch.searchsorted(cdf, cdf[..., -1:].contiguous())      # [..., 1]
    return torch.minimum(tokens, last_positive).squeeze(-1)
