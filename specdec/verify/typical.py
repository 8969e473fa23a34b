"""Typical acceptance (Medusa, Cai et al. 2024). LOSSY: opt-in by name only.

!!! This rule does NOT reproduce the target distribution. It accepts any draft token the target finds
"typical enough", so sampled output differs in distribution from the target's (greedy output is unchanged
when target_probs are one-hot, i.e. temperature 0). Use it only when the user asks for rule="typical".

A draft node with token x under a node whose target distribution is t is *accepted* if
t[x] > min(posterior_threshold, posterior_alpha * exp(-entropy(t))). The accepted path is the longest
root path whose nodes are all accepted (ties: the lowest node index). The next token is sampled from the
target at the last accepted node: a *bonus* token if that node has no children, else a *recovered* token.
"""

from __future__ import annotations

import torch
from torch import Tensor

from specdec.types import Draft, VerifyResult
from specdec.verify.checks import check_draft
from specdec.verify.paths import result_from_path
from specdec.verify.probs import sample_from_uniforms, uniforms_like


def verify_typical(draft: Draft, target_probs: Tensor, generator: torch.Generator | None = None,
                   posterior_threshold: float = 0.09, posterior_alpha: float = 0.3) -> VerifyResult:
    """LOSSY typical acceptance of a chain or tree draft (Medusa defaults 0.09 and 0.3).

    Draws one uniform from ``generator`` for the next token.
    """
    # target_probs: [n+1, vocab]
    uniform = uniforms_like((), generator, target_probs.device)
    return verify_typical_from_uniform(draft, target_probs, uniform, posterior_threshold, posterior_alpha)


def verify_typical_from_uniform(draft: Draft, target_probs: Tensor, uniform: Tensor,
                                posterior_threshold: float = 0.09, posterior_alpha: float = 0.3) -> VerifyResult:
    """LOSSY typical acceptance with the random draw given: uniform [] in [0, 1)."""
    # target_probs: [n+1, vocab]
    check_draft(draft, target_probs, name="target_probs")
    entropy = torch.special.entr(target_probs).sum(-1)                            # [n+1] nats
    cutoff = torch.clamp(posterior_alpha * torch.exp(-entropy), max=posterior_threshold)  # [n+1]
    parent_rows = draft.parents + 1                                               # [n] target row of parent
    ok = (target_probs[parent_rows, draft.tokens] > cutoff[parent_rows]).tolist()  # [n] node passes
    parents = draft.parents.tolist()
    on_path = [False] * draft.size                  # node and all its ancestors pass
    depth = [0] * draft.size
    for i, parent in enumerate(parents):
        on_path[i] = ok[i] and (parent < 0 or on_path[parent])
        depth[i] = 1 if parent < 0 else depth[parent] + 1
    best = max((i for i in range(draft.size) if on_path[i]), key=lambda i: (depth[i], -i), default=-1)
    path = []
    node = best
    while node >= 0:
        path.append(node)
        node = parents[node]
    path.reverse()
    has_children = set(parents)
    next_token = int(sample_from_uniforms(target_probs[best + 1], uniform))
    return result_from_path(draft, path, next_token, bonus=best not in has_children)
