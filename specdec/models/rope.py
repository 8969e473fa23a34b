"""Rotary position embeddings (RoPE, Su et al. 2021) with the default, linear and Llama-3 frequency rules."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from specdec.errors import ModelFileError


def inv_frequencies(head_dim: int, theta: float, scaling: dict | None) -> Tensor:  # [head_dim // 2]
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    rope_type = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if rope_type == "default":
        return inv_freq
    if rope_type == "linear":
        return inv_freq / float(scaling["factor"])
    if rope_type == "llama3":
        # Llama 3.1: long wavelengths divided by `factor`, short ones kept, a smooth ramp between.
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_ctx = scaling["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old_ctx / wavelen - low) / (high - low)
        mid = (1 - smooth) * scaled / factor + smooth * scaled
        is_mid = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return torch.where(is_mid, mid, scaled)
    raise ModelFileError(f"rope type {rope_type!r} is not supported; supported: default, linear, llama3")


def rope_tables(head_dim: int, theta: float, scaling: dict | None, length: int) -> tuple[Tensor, Tensor]:
    """cos, sin tables [length, head_dim] in the rotate-half layout used by Hugging Face checkpoints."""
    inv_freq = inv_frequencies(head_dim, theta, scaling)
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)   # [length, head_dim // 2]
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x [batch, heads, t, head_dim]; cos, sin [t, head_dim] for the tokens' positions."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin
