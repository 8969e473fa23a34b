"""Greedy verification: keep draft tokens while they equal the target's argmax.

*Accepted* tokens are the draft nodes on the path that follows the target's argmax from the root. The
*next* token is the target's argmax after the last accepted node: a *bonus* token when that node has no
children (the whole branch was accepted), otherwise the *recovered* token that replaces the rejected
children. The emitted tokens are exactly what vanilla greedy decoding of the target would produce.
"""

from __future__ import annotations

from torch import Tensor

from specdec.types import Draft, VerifyResult
from specdec.verify.checks import check_chain_batch, check_draft
from specdec.verify.paths import children_lists, result_from_path


def verify_greedy(draft: Draft, target_logits: Tensor) -> VerifyResult:
    """Verify a chain or tree draft greedily.

    target_logits row 0 is the target after the root, row i+1 the target after node i. From the root,
    move into the first child whose token equals the target argmax at the current node; stop when none does.
    """
    # target_logits: [n+1, vocab]
    check_draft(draft, target_logits)
    return verify_greedy_choices(draft, target_logits.argmax(-1).tolist())


def verify_greedy_choices(draft: Draft, best: list[int]) -> VerifyResult:
    """The greedy walk over given choices: best[0] is the target's token after the root, best[i + 1] after node
    i (the argmax for greedy decoding, the seeded sample for seeded sampling)."""
    tokens = draft.tokens.tolist()
    children = children_lists(draft.parents.tolist())
    path: list[int] = []
    row = 0                                                 # row of the current node (0 = root)
    while True:
        match = next((c for c in children[row] if tokens[c] == best[row]), None)
        if match is None:
            return result_from_path(draft, path, best[row], bonus=not children[row])
        path.append(match)
        row = match + 1


def verify_chain_greedy_batched(draft_tokens: Tensor, target_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Vectorised greedy verification of a batch of chains.

    Returns (n_accepted [batch], next_tokens [batch]); row b emits draft_tokens[b, :n_accepted[b]] then
    next_tokens[b] (bonus when n_accepted[b] == k, else recovered).
    """
    # draft_tokens: [batch, k]; target_logits: [batch, k+1, vocab]
    check_chain_batch(draft_tokens, target_logits)
    best = target_logits.argmax(-1)                                          # [batch, k+1]
    matches = (draft_tokens == best[:, :-1]).long()                          # [batch, k]
    n_accepted = matches.cumprod(-1).sum(-1)                                 # [batch] length of matching prefix
    next_tokens = best.gather(1, n_accepted.unsqueeze(1)).squeeze(1)         # [batch]
    return n_accepted, next_tokens
