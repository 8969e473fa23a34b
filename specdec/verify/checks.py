"""Shape checks shared by the verifiers: a mismatch raises ValueError naming the shapes involved."""

from __future__ import annotations

from torch import Tensor

from specdec.types import Draft


def check_draft(draft: Draft, target: Tensor, name: str = "target_logits") -> None:
    """Check a draft of n nodes against ``target`` [n+1, vocab] (logits or probs)."""
    n = draft.tokens.shape[0] if draft.tokens.dim() == 1 else -1
    if draft.tokens.dim() != 1 or draft.parents.shape != draft.tokens.shape:
        raise ValueError(f"draft.tokens and draft.parents must both have shape [n], got "
                         f"{tuple(draft.tokens.shape)} and {tuple(draft.parents.shape)}.")
    if target.dim() != 2 or target.shape[0] != n + 1:
        raise ValueError(f"{name} must have shape [n+1, vocab] = [{n + 1}, vocab] for a draft of {n} nodes, "
                         f"got {tuple(target.shape)}.")
    vocab = target.shape[1]
    if draft.draft_probs is not None and tuple(draft.draft_probs.shape) != (n, vocab):
        raise ValueError(f"draft.draft_probs must have shape [n, vocab] = [{n}, {vocab}], "
                         f"got {tuple(draft.draft_probs.shape)}.")
    check_parents(draft.parents, n)
    if n and not (0 <= int(draft.tokens.min()) and int(draft.tokens.max()) < vocab):
        raise ValueError(f"draft.tokens must lie in [0, {vocab}), got min {int(draft.tokens.min())} "
                         f"and max {int(draft.tokens.max())}.")


def check_parents(parents: Tensor, n: int) -> None:
    """``parents`` [n]: -1 for children of the root, else an earlier node index (topological order)."""
    if tuple(parents.shape) != (n,):
        raise ValueError(f"parents must have shape [n] = [{n}], got {tuple(parents.shape)}.")
    for i, parent in enumerate(parents.tolist()):
        if not -1 <= parent < i:
            raise ValueError(f"parents[{i}] = {parent} is invalid; accepted: -1 (root) or a node "
                             f"index < {i} (nodes must be topologically ordered).")


def check_chain_batch(draft_tokens: Tensor, target: Tensor, draft_probs: Tensor | None = None,
                      name: str = "target_logits") -> None:
    """Check ``draft_tokens`` [batch, k] (chains, or same-shape trees) against ``target`` [batch, k+1, vocab]
    and ``draft_probs`` [batch, k, vocab]."""
    if draft_tokens.dim() != 2:
        raise ValueError(f"draft_tokens must have shape [batch, k], got {tuple(draft_tokens.shape)}.")
    batch, k = draft_tokens.shape
    if target.dim() != 3 or tuple(target.shape[:2]) != (batch, k + 1):
        raise ValueError(f"{name} must have shape [batch, k+1, vocab] = [{batch}, {k + 1}, vocab], "
                         f"got {tuple(target.shape)}.")
    vocab = target.shape[2]
    if draft_probs is not None and tuple(draft_probs.shape) != (batch, k, vocab):
        raise ValueError(f"draft_probs must have shape [batch, k, vocab] = [{batch}, {k}, {vocab}], "
                         f"got {tuple(draft_probs.shape)}.")
    if draft_tokens.numel() and not (0 <= int(draft_tokens.min()) and int(draft_tokens.max()) < vocab):
        raise ValueError(f"draft_tokens must lie in [0, {vocab}), got min {int(draft_tokens.min())} "
                         f"and max {int(draft_tokens.max())}.")
