"""Seeded sampling by position-keyed Gumbel noise: a sampled token depends only on the request's seed, its
position in the sequence and the target's distribution there.

The token at sequence position t is ``argmax_v(log target_probs_t[v] + g(seed, t, v))`` where the g are
independent standard Gumbel variables (the Gumbel-max trick: the argmax is distributed exactly as
target_probs_t; filtered tokens have probability 0, log -inf, and are never chosen). The noise is a function of
(seed, t, v) only, computed from a counter-based integer hash in plain torch integer ops (the same numbers on
any device, no generator state), so:

- vanilla decoding samples position t with g(seed, t, .);
- verification scores each draft row with the noise of the position that row predicts and keeps a draft
  token iff it equals that row's sample: a greedy walk over the samples. The emitted tokens are exactly
  vanilla's seeded tokens, whatever the draft, its shape, the method, or the rest of the batch, and their
  distribution is exactly the target's (lossless by construction, for any draft);
- a deterministic draft (chain or tree of fixed candidates) is accepted with the same probability as under
  recursive rejection sampling: a child c of an accepted node is accepted iff the target's sample there is c,
  probability target_probs[c], and among siblings at most one can match;
- a drafter that samples its proposals draws them with the same noise (`sample_seeded` on its own
  distribution; `top_seeded` for siblings, Gumbel-top-k): its proposal matches whenever both argmaxes agree,
  which happens with probability between (1 - TV) / (1 + TV) and 1 - TV (TV: total variation between the draft
  and target distributions), somewhat below rejection sampling's 1 - TV. The rule "rejection" keeps recursive
  rejection sampling for such drafters.

Only tokens with probability >= EPSILON get their own noise (a few hundred to a few thousand of a 49k
vocabulary): by the max-stability of Gumbel variables, the best of the others has the law of
``log(their total mass) + G`` for one Gumbel G and, given that it wins, is token v with probability
proportional to target_probs[v]. So that group competes with one noise value of its own and, when it wins,
its token is drawn by inverse CDF from a position-keyed uniform: the sample is still exact. Uniforms carry 53
random bits (two 32-bit hashes) and everything after the hash is float64, so rare tokens are drawn with their
own probability, not a rounded one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from specdec.types import Draft, VerifyResult
from specdec.verify.greedy import verify_greedy_choices

EPSILON = 1e-6        # tokens at least this likely get their own noise; the rest compete as one group
_MASK32 = 0xFFFFFFFF


def _mul32(x: Tensor, c: int) -> Tensor:
    """(x * c) mod 2**32 for x [...] int64 in [0, 2**32) and a 32-bit constant, without int64 overflow."""
    lo = x * (c & 0xFFFF)                                   # < 2**48
    hi = ((x * (c >> 16)) & 0xFFFF) << 16                   # < 2**32
    return (lo + hi) & _MASK32


def hash32(x: Tensor) -> Tensor:
    """A bijective 32-bit integer hash (xor-shift-multiply, "lowbias32" constants) of x [...] int64 in
    [0, 2**32); returns int64 in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def position_keys(seed: int, positions: Tensor) -> Tensor:
    """A 32-bit key per (seed, position): [...] int64, the first half of the noise's hash."""
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed {seed} is out of range; accepted: 0 <= seed < 2**64")
    device = positions.device
    s = hash32(torch.tensor(seed & _MASK32, device=device) ^ hash32(torch.tensor(seed >> 32, device=device)))
    return hash32(s ^ hash32(positions.long() & _MASK32))


def uniforms(keys: Tensor, tokens: Tensor) -> Tensor:
    """U(0, 1), never 0 or 1, for each (position key, token) pair: [...] float64 (broadcast together). 53 bits:
    27 from a second hash of the pair's hash, 26 from the pair's hash itself (both bijections of the pair)."""
    h = hash32(keys ^ tokens.to(keys.device).long())
    high = hash32(h ^ 0x9E3779B9) >> 5                                                # 27 bits
    return ((high << 26) + (h >> 6)).double().add_(0.5).mul_(2.0 ** -53)


def gumbel(keys: Tensor, tokens: Tensor) -> Tensor:
    """Standard Gumbel noise g(seed, position, token) from the position keys, [...] float64."""
    return -torch.log(-torch.log(uniforms(keys, tokens)))


def perturbed_scores(probs: Tensor, seed: int, positions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The competitors of each row's sample: (rows [M], tokens [M], scores [M] float64 = log probs + g, for the
    tokens >= EPSILON; rest [n] float64 = log(the other tokens' mass) + the group's own g, -inf when empty)."""
    # probs: [n, vocab] normalised rows; positions: [n] int64
    vocab = probs.shape[-1]
    keys = position_keys(seed, positions.to(probs.device))                            # [n]
    big = probs >= EPSILON                                                            # [n, vocab]
    rows, tokens = big.nonzero(as_tuple=True)                                         # [M], [M]
    scores = probs[rows, tokens].double().log() + gumbel(keys[rows], tokens)          # [M]
    rest_mass = probs.masked_fill(big, 0.0).sum(-1).double()                          # [n]
    rest = rest_mass.log() + gumbel(keys, torch.full_like(keys, vocab))
    return rows, tokens, scores, rest


def sample_seeded(probs: Tensor, seed: int, positions: Tensor) -> Tensor:
    """The seeded sample of each row of probs [n, vocab] (row i at sequence position positions[i]) -> [n]."""
    rows, tokens, scores, rest = perturbed_scores(probs, seed, positions)
    n = probs.shape[0]
    top = torch.full((n,), float("-inf"), dtype=torch.float64, device=probs.device)
    top.scatter_reduce_(0, rows, scores, "amax")                                      # [n] best score per row
    winner = scores == top[rows]                                                      # the argmax of each row
    best = torch.zeros(n, dtype=torch.long, device=probs.device)
    best[rows[winner]] = tokens[winner]
    rare = (rest > top).nonzero().flatten()                     # rows whose group of rare tokens won: which one?
    if rare.numel():
        small = probs[rare].double().masked_fill(probs[rare] >= EPSILON, 0.0)          # [r, vocab]
        cdf = small.cumsum(-1)
        u = uniforms(position_keys(seed, positions[rare].to(probs.device)), torch.tensor(probs.shape[-1] + 1))
        pick = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).squeeze(1)
        best[rare] = pick.clamp(max=probs.shape[-1] - 1)
    return best


def top_seeded(probs: Tensor, seed: int, position: int, k: int) -> list[int]:
    """k distinct proposals from probs [vocab] at a sequence position, Gumbel-top-k with the position's noise:
    the first is the seeded sample whenever that sample is at least EPSILON likely."""
    _, tokens, scores, _ = perturbed_scores(probs.unsqueeze(0), seed, torch.tensor([position]))
    order = scores.topk(min(k, scores.numel())).indices
    return tokens[order].tolist()


def verify_seeded(draft: Draft, target_probs: Tensor, seed: int, position: int) -> VerifyResult:
    """Keep draft tokens while each equals the seeded sample of the target at its position.

    target_probs row 0 is the target after the root (it predicts sequence position `position`), row i + 1 the
    target after node i (position `position + depth(i)`). draft_probs are not used: the sample at a position
    does not depend on what was proposed.
    """
    # target_probs: [n+1, vocab]
    return verify_greedy_choices(draft, seeded_choices(draft, target_probs, seed, position).tolist())


def seeded_choices(draft: Draft, target_probs: Tensor, seed: int, position: int) -> Tensor:
    """The seeded sample of each row of target_probs [n+1, vocab] at the position that row predicts -> [n+1], on
    target_probs's device (the choices `verify_seeded` walks)."""
    rows = torch.cat([torch.zeros(1, dtype=torch.long), draft.depths()]) + position                # [n+1]
    return sample_seeded(target_probs, seed, rows)
