"""Lossless speculative sampling for chains (Leviathan et al. 2023; Chen et al. 2023), vectorised over a batch.

Draft token x at depth d was drawn from draft_probs[d]. It is *accepted* with probability
min(1, target_probs[d, x] / draft_probs[d, x]). At the first rejection the *recovered* token is drawn from the
residual norm(max(0, target_probs[d] - draft_probs[d])); after a fully accepted draft the *bonus* token is
drawn from target_probs[k]. Why lossless: P(emit y at depth d) = min(d(y), t(y)) [accept]
+ (1 - sum_x min(d(x), t(x))) * max(0, t(y) - d(y)) / sum_x max(0, t(x) - d(x)) [recover] = t(y), because
1 - sum min(d, t) = sum max(0, t - d). draft_probs None means one-hot proposals (deterministic drafter).
"""

from __future__ import annotations

import torch
from torch import Tensor

from specdec.verify.checks import check_chain_batch
from specdec.verify.probs import sample_from_uniforms, uniforms_like


def verify_chain_sampling_batched(draft_tokens: Tensor, draft_probs: Tensor | None, target_probs: Tensor,
                                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Speculative sampling for a batch of chains. Returns (n_accepted [batch], next_tokens [batch]).

    Draws uniforms [batch, k+1] from ``generator``: columns 0..k-1 for the acceptance tests, column k for
    the recovered / bonus token (see ``verify_chain_sampling_from_uniforms``).
    """
    # draft_tokens: [batch, k]; draft_probs: [batch, k, vocab] | None; target_probs: [batch, k+1, vocab]
    batch, k = draft_tokens.shape[0], draft_tokens.shape[-1]
    uniforms = uniforms_like((batch, k + 1), generator, target_probs.device)
    return verify_chain_sampling_from_uniforms(draft_tokens, draft_probs, target_probs, uniforms)


def verify_chain_sampling_from_uniforms(draft_tokens: Tensor, draft_probs: Tensor | None, target_probs: Tensor,
                                        uniforms: Tensor) -> tuple[Tensor, Tensor]:
    """Speculative sampling with the random draws given: uniforms [batch, k+1] in [0, 1)."""
    # draft_tokens: [batch, k]; draft_probs: [batch, k, vocab] | None; target_probs: [batch, k+1, vocab]
    check_chain_batch(draft_tokens, target_probs, draft_probs, name="target_probs")
    batch, k = draft_tokens.shape
    rows = torch.arange(batch, device=target_probs.device)
    index = draft_tokens.unsqueeze(-1)                                       # [batch, k, 1]
    target_at = target_probs[:, :k].gather(-1, index).squeeze(-1)            # [batch, k] target_probs[x]
    draft_at = (torch.ones_like(target_at) if draft_probs is None           # one-hot proposal: draft_probs[x] = 1
                else draft_probs.gather(-1, index).squeeze(-1))              # [batch, k]
    accepted = uniforms[:, :k] * draft_at < target_at                        # u < target/draft, no division
    n_accepted = accepted.long().cumprod(-1).sum(-1)                         # [batch]
    # Recovered token after a rejection at depth n, bonus token from target_probs[k] after full acceptance.
    target_row = target_probs[rows, n_accepted]                              # [batch, vocab]
    if k == 0:
        return n_accepted, sample_from_uniforms(target_row, uniforms[:, k])
    depth = n_accepted.clamp(max=k - 1)
    if draft_probs is None:
        draft_row = torch.nn.functional.one_hot(draft_tokens[rows, depth], target_probs.shape[-1])
    else:
        draft_row = draft_probs[rows, depth]                                 # [batch, vocab]
    residual = (target_row - draft_row).clamp(min=0)                         # unnormalised; sampler rescales
    degenerate = residual.sum(-1, keepdim=True) <= 1e-12                     # target == draft: fall back
    residual = torch.where(degenerate, target_row, residual)
    next_dist = torch.where((n_accepted < k).unsqueeze(-1), residual, target_row)
    return n_accepted, sample_from_uniforms(next_dist, uniforms[:, k])
