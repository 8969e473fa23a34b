"""The one verification entry point the engine calls, and the registry of verification rules by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from specdec.config import SamplingParams
from specdec.errors import ConfigError
from specdec.types import Draft, VerifyResult
from specdec.verify.checks import check_draft
from specdec.verify.greedy import verify_greedy
from specdec.verify.paths import result_from_path
from specdec.verify.probs import logits_to_probs
from specdec.verify.sampling import verify_chain_sampling_batched
from specdec.verify.tree import verify_tree_sampling
from specdec.verify.typical import verify_typical

Rule = Callable[[Draft, Tensor, torch.Generator | None], VerifyResult]   # (draft, target_probs, generator)


def _verify_exact(draft: Draft, target_probs: Tensor, generator: torch.Generator | None) -> VerifyResult:
    """Lossless speculative sampling: batched chain fast path for chains, recursive rejection for trees."""
    # target_probs: [n+1, vocab]
    if not draft.is_chain:
        return verify_tree_sampling(draft, target_probs, generator)
    draft_probs = None if draft.draft_probs is None else draft.draft_probs.unsqueeze(0)
    n_accepted, next_tokens = verify_chain_sampling_batched(
        draft.tokens.unsqueeze(0), draft_probs, target_probs.unsqueeze(0), generator)
    n = int(n_accepted[0])
    return result_from_path(draft, list(range(n)), int(next_tokens[0]), bonus=n == draft.size)


def _verify_typical(draft: Draft, target_probs: Tensor, generator: torch.Generator | None) -> VerifyResult:
    return verify_typical(draft, target_probs, generator)


VERIFY_RULES: dict[str, Rule] = {"exact": _verify_exact, "typical": _verify_typical}
LOSSY_RULES = {"typical"}   # rules whose sampled output does NOT follow the target distribution


def verify_draft(draft: Draft, target_logits: Tensor, sampling: SamplingParams,
                 generator: torch.Generator | None = None, rule: str = "exact") -> VerifyResult:
    """Verify one draft against the target's logits.

    target_logits row 0 is the target after the last committed token, row i+1 the target after draft node i.
    Greedy sampling (temperature 0) uses exact greedy verification whatever the rule. Otherwise the target
    logits go through ``logits_to_probs(sampling)``; ``draft.draft_probs`` must already be the drafter's
    distribution after the same transform. Unknown rules raise ConfigError.
    """
    # target_logits: [n+1, vocab]
    if rule not in VERIFY_RULES:
        raise ConfigError(f"verification rule {rule!r} is unknown; accepted: {', '.join(sorted(VERIFY_RULES))}.")
    check_draft(draft, target_logits)
    if sampling.greedy:
        return verify_greedy(draft, target_logits)
    # Sampling rules run on the CPU, where the engine's generator lives and where they are tested; on a GPU
    # this costs one [n+1, vocab] copy per step (greedy above only reads the argmax and stays on the device).
    draft, target_logits = draft.cpu(), target_logits.cpu()
    return VERIFY_RULES[rule](draft, logits_to_probs(target_logits, sampling), generator)
