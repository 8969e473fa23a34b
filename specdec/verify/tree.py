"""Lossless speculative sampling for token trees: recursive rejection sampling over siblings.

Multi-round form of SpecInfer / EAGLE, with siblings drawn *without replacement* as in Jeon et al. 2024
("Recursive Speculative Decoding"). At the current node (start: the root) the residual r is the target's
distribution there. For each child c in sibling order, its proposal distribution d is draft_probs[c] with the
tokens of the earlier (rejected) siblings zeroed and renormalised -- exactly the distribution c was drawn from
-- or the one-hot of c's token when draft_probs is None. Child c (token x) is *accepted* with probability
min(1, r[x] / d[x]): verification moves into c and restarts there. If rejected, r <- norm(max(0, r - d)) and
the next sibling is tried. If every child is rejected, the *recovered* token is drawn from r. At a node with
no children (a leaf, or the root of an empty draft) the *bonus* token is drawn from the target there.

Why lossless: fix a node and the history so far (earlier siblings' tokens and coin flips). If the next
sibling's token x is drawn from a proposal d that depends only on that history, and r is the distribution the
emitted token must follow from here on, then P(accept, emit y) = d(y) min(1, r(y)/d(y)) = min(d(y), r(y)),
P(reject) = 1 - sum min(d, r) = sum max(0, r - d), and after a rejection we continue with the target
norm(max(0, r - d)); so P(emit y) = min(d(y), r(y)) + max(0, r(y) - d(y)) = r(y). Any proposal chosen from
the past works -- in particular "draft_probs minus the earlier siblings' tokens" -- as long as the residual
is updated with that same proposal (using the raw draft_probs instead would be wrong for draws without
replacement). By induction over siblings the token emitted at the root follows target_probs[0]; if it is
an accepted child, verification continues at that child against the target's distribution after it, so the
whole emitted sequence follows the target.
"""

from __future__ import annotations

import torch
from torch import Tensor

from specdec.types import Draft, VerifyResult
from specdec.verify.checks import check_chain_batch, check_draft, check_parents
from specdec.verify.paths import children_lists, result_from_path
from specdec.verify.probs import sample_from_uniforms, uniforms_like

_EMPTY_MASS = 1e-12   # a residual with less mass than this is treated as all-zero (numerical noise)


def verify_tree_sampling(draft: Draft, target_probs: Tensor,
                         generator: torch.Generator | None = None) -> VerifyResult:
    """Verify a chain or tree draft by recursive rejection sampling (see the module docstring).

    Draws uniforms [n+1] from ``generator``: uniforms[i] is the acceptance test of node i (each node is
    tested at most once), uniforms[n] draws the recovered / bonus token.
    """
    # target_probs: [n+1, vocab]
    uniforms = uniforms_like((draft.size + 1,), generator, target_probs.device)
    return verify_tree_sampling_from_uniforms(draft, target_probs, uniforms)


def verify_tree_sampling_from_uniforms(draft: Draft, target_probs: Tensor, uniforms: Tensor) -> VerifyResult:
    """Recursive rejection sampling with the random draws given: uniforms [n+1] in [0, 1)."""
    # target_probs: [n+1, vocab]; uniforms: [n+1]
    check_draft(draft, target_probs, name="target_probs")
    proposals = sibling_proposals(draft.tokens, draft.parents, draft.draft_probs,
                                  target_probs.shape[1], target_probs.dtype)   # [n, vocab]
    proposal_at = proposals.gather(1, draft.tokens.view(-1, 1)).view(-1).tolist()     # [n] d[x] of each node
    tokens, coins = draft.tokens.tolist(), uniforms.tolist()
    children = children_lists(draft.parents.tolist())
    path: list[int] = []
    row = 0                                                     # target row of the current node (0 = root)
    while children[row]:
        residual = target_probs[row] / target_probs[row].sum()  # [vocab] what the emitted token must follow
        for child in children[row]:
            if coins[child] * proposal_at[child] < float(residual[tokens[child]]):   # u < r[x] / d[x]
                path.append(child)
                break
            residual = _next_residual(residual, proposals[child], target_probs[row])
        else:                                                   # every child rejected: recovered token
            return result_from_path(draft, path, int(sample_from_uniforms(residual, uniforms[-1])), bonus=False)
        row = path[-1] + 1
    return result_from_path(draft, path, int(sample_from_uniforms(target_probs[row], uniforms[-1])), bonus=True)


def verify_tree_sampling_batched(draft_tokens: Tensor, parents: Tensor, draft_probs: Tensor | None,
                                 target_probs: Tensor, generator: torch.Generator | None = None
                                 ) -> tuple[Tensor, Tensor]:
    """Recursive rejection sampling for a batch of trees that share one topology (e.g. a static tree).

    Returns (last_node [batch], next_tokens [batch]): the deepest accepted node (-1 = none accepted; the
    accepted path is its chain of ancestors) and the recovered / bonus token. Uses the random draws exactly as
    ``verify_tree_sampling`` does, so with equal uniforms both give identical results (up to float rounding
    exactly at an acceptance boundary).
    """
    # draft_tokens: [batch, n]; parents: [n]; draft_probs: [batch, n, vocab] | None; target_probs: [batch, n+1, vocab]
    batch, n = draft_tokens.shape
    uniforms = uniforms_like((batch, n + 1), generator, target_probs.device)
    return verify_tree_sampling_batched_from_uniforms(draft_tokens, parents, draft_probs, target_probs, uniforms)


def verify_tree_sampling_batched_from_uniforms(draft_tokens: Tensor, parents: Tensor, draft_probs: Tensor | None,
                                               target_probs: Tensor, uniforms: Tensor) -> tuple[Tensor, Tensor]:
    """Batched recursive rejection sampling with the random draws given: uniforms [batch, n+1] in [0, 1).

    Nodes are visited in index order; a trial tests node i only while it sits at i's parent. Its residual
    restarts at the target row of every accepted node, so at the end it is the bonus distribution (leaf)
    or the residual after all children were rejected (recovered).
    """
    # draft_tokens: [batch, n]; parents: [n]; draft_probs: [batch, n, vocab] | None; target_probs: [batch, n+1, vocab]
    check_chain_batch(draft_tokens, target_probs, draft_probs, name="target_probs")
    check_parents(parents, draft_tokens.shape[1])
    batch, n = draft_tokens.shape
    proposals = sibling_proposals(draft_tokens, parents, draft_probs, target_probs.shape[-1], target_probs.dtype)
    proposal_at = proposals.gather(-1, draft_tokens.unsqueeze(-1)).squeeze(-1)     # [batch, n] d[x] per node
    target_rows = target_probs / target_probs.sum(-1, keepdim=True)                # [batch, n+1, vocab]
    residual = target_rows[:, 0]                                                   # [batch, vocab]
    current = torch.full((batch,), -1, dtype=torch.long, device=target_probs.device)  # node each trial sits at
    for node, parent in enumerate(parents.tolist()):
        active = current == parent                                                 # [batch]
        residual_at = residual.gather(1, draft_tokens[:, node : node + 1]).squeeze(1)
        accept = active & (uniforms[:, node] * proposal_at[:, node] < residual_at)  # u < r[x] / d[x]
        leftover = (residual - proposals[:, node]).clamp(min=0)                    # [batch, vocab]
        mass = leftover.sum(-1, keepdim=True)
        rejected = torch.where(mass > _EMPTY_MASS, leftover / mass, target_rows[:, parent + 1])
        residual = torch.where(accept.unsqueeze(1), target_rows[:, node + 1],
                               torch.where((active & ~accept).unsqueeze(1), rejected, residual))
        current = torch.where(accept, node, current)
    return current, sample_from_uniforms(residual, uniforms[:, n])


def sibling_proposals(tokens: Tensor, parents: Tensor, draft_probs: Tensor | None, vocab: int,
                      dtype: torch.dtype) -> Tensor:
    """[..., n, vocab]: the distribution each node's token was drawn from, normalised.

    draft_probs[..., i, :] with the tokens of i's earlier siblings zeroed (draws without replacement), or the
    one-hot of i's token when draft_probs is None or gives that token no mass after masking (a drafter that
    broke its contract; the one-hot keeps verification well defined).
    """
    # tokens: [..., n]; parents: [n]; draft_probs: [..., n, vocab] | None
    one_hot = torch.nn.functional.one_hot(tokens, vocab).to(dtype)               # [..., n, vocab]
    if draft_probs is None:
        return one_hot
    index = torch.arange(parents.shape[0], device=one_hot.device)
    same_parent = parents.view(-1, 1) == parents.view(1, -1)                    # [n, n]
    node, sibling = (same_parent & (index.view(-1, 1) > index.view(1, -1))).nonzero(as_tuple=True)
    tried = torch.zeros_like(one_hot).index_add_(-2, node, one_hot[..., sibling, :]) > 0  # earlier siblings' tokens
    masked = draft_probs.to(dtype).masked_fill(tried, 0.0)                      # [..., n, vocab]
    has_mass = masked.gather(-1, tokens.unsqueeze(-1)) > 0                      # [..., n, 1]
    normalised = masked / masked.sum(-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    return torch.where(has_mass, normalised, one_hot)


def _next_residual(residual: Tensor, proposal: Tensor, target_row: Tensor) -> Tensor:
    """norm(max(0, residual - proposal)); the target row itself if that is (numerically) all zero."""
    # residual, proposal, target_row: [vocab]
    leftover = (residual - proposal).clamp(min=0)
    mass = float(leftover.sum())
    return leftover / mass if mass > _EMPTY_MASS else target_row / target_row.sum()
