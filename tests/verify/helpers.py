"""Shared helpers for the verify tests: the statistical bound, Markov-chain models, random trees."""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from specdec.config import SamplingParams
from specdec.verify import logits_to_probs, sample


def tv_bound(categories: int, trials: int, delta: float = 1e-4) -> float:
    """Total-variation bound that an empirical distribution of ``trials`` iid draws exceeds w.p. <= delta.

    Derivation: E|p_hat_i - p_i| <= sqrt(Var p_hat_i) = sqrt(p_i (1 - p_i) / N), so by Cauchy-Schwarz
    E||p_hat - p||_1 <= sum_i sqrt(p_i / N) <= sqrt(V / N). Replacing one of the N draws moves
    ||p_hat - p||_1 by at most 2/N, so McDiarmid gives P(||p_hat - p||_1 >= E + t) <= exp(-N t^2 / 2);
    t = sqrt(2 ln(1/delta) / N). TV is half the L1 distance.
    """
    return 0.5 * (math.sqrt(categories / trials) + math.sqrt(2 * math.log(1 / delta) / trials))


def tv_distance(samples: torch.Tensor, exact: torch.Tensor) -> float:
    """TV between the empirical distribution of integer ``samples`` [N] and ``exact`` [categories]."""
    counts = torch.bincount(samples, minlength=exact.numel()).double()
    return 0.5 * float((counts / samples.numel() - exact.double()).abs().sum())


def markov_model(vocab: int, sampling: SamplingParams, seed: int, scale: float = 1.5) -> torch.Tensor:
    """[vocab, vocab]: row a = next-token distribution after token a, from random logits through sampling."""
    g = torch.Generator().manual_seed(seed)
    return logits_to_probs(scale * torch.randn(vocab, vocab, generator=g), sampling)


def draw_without_replacement(probs: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """[batch, count] tokens drawn one after another from ``probs`` [batch, vocab], earlier draws removed."""
    remaining = probs.clone()
    draws = []
    for _ in range(count):
        token = sample(remaining, generator)
        draws.append(token)
        remaining[torch.arange(probs.shape[0]), token] = 0.0
    return torch.stack(draws, dim=1)


@st.composite
def random_trees(draw, max_nodes: int = 7, vocab: int = 3, with_probs: bool | None = None):
    """(tokens [n], parents [n], target_logits [n+1, vocab], draft_probs [n, vocab] | None) from hypothesis."""
    n = draw(st.integers(0, max_nodes))
    parents = [draw(st.integers(-1, i - 1)) for i in range(n)]
    tokens = [draw(st.integers(0, vocab - 1)) for _ in range(n)]
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    target_logits = 2.0 * torch.randn(n + 1, vocab, generator=g)
    use_probs = draw(st.booleans()) if with_probs is None else with_probs
    draft_probs = torch.softmax(torch.randn(n, vocab, generator=g), -1) if use_probs else None
    return torch.tensor(tokens, dtype=torch.long), torch.tensor(parents, dtype=torch.long), target_logits, draft_probs


def is_root_path(path: list[int], parents: list[int]) -> bool:
    """True if ``path`` starts at a child of the root and each node is the child of the one before."""
    return all(parents[node] == (path[j - 1] if j else -1) for j, node in enumerate(path))
