"""The one verification entry point the engine calls, and the registry of verification rules by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from specdec.config import SamplingParams
from specdec.errors import ConfigError
from specdec.types import Draft, VerifyResult
from specdec.verify.checks import check_draft
from specdec.verify.greedy import verify_greedy, verify_greedy_choices
from specdec.verify.paths import result_from_path
from specdec.verify.probs import logits_to_probs
from specdec.verify.sampling import verify_chain_sampling_batched
from specdec.verify.seeded import seeded_choices, verify_seeded
from specdec.verify.tree import verify_tree_sampling
from specdec.verify.typical import verify_typical


@dataclass(frozen=True)
class Draws:
    """Where a rule's randomness comes from: the request's generator (rejection sampling, typical acceptance)
    and its seed with the sequence position that target row 0 predicts (position-keyed noise)."""

    generator: torch.Generator | None
    seed: int | None             # None only for rules outside SEED_STABLE_RULES
    position: int


Rule = Callable[[Draft, Tensor, Draws], VerifyResult]   # (draft, target_probs [n+1, vocab], draws)


def _verify_exact(draft: Draft, target_probs: Tensor, draws: Draws) -> VerifyResult:
    """Lossless and seed-stable: each position's token is the seeded sample of the target there."""
    return verify_seeded(draft, target_probs, draws.seed, draws.position)


def _verify_rejection(draft: Draft, target_probs: Tensor, draws: Draws) -> VerifyResult:
    """Lossless speculative sampling: batched chain fast path for chains, recursive rejection for trees."""
    # target_probs: [n+1, vocab]
    generator = draws.generator
    if not draft.is_chain:
        return verify_tree_sampling(draft, target_probs, generator)
    draft_probs = None if draft.draft_probs is None else draft.draft_probs.unsqueeze(0)
    n_accepted, next_tokens = verify_chain_sampling_batched(
        draft.tokens.unsqueeze(0), draft_probs, target_probs.unsqueeze(0), generator)
    n = int(n_accepted[0])
    return result_from_path(draft, list(range(n)), int(next_tokens[0]), bonus=n == draft.size)


def _verify_typical(draft: Draft, target_probs: Tensor, draws: Draws) -> VerifyResult:
    return verify_typical(draft, target_probs, draws.generator)


def _exact_choices(draft: Draft, target_probs: Tensor, draws: Draws) -> Tensor:
    """The rows' seeded samples: `_verify_exact` is the greedy walk over these."""
    return seeded_choices(draft, target_probs, draws.seed, draws.position)


VERIFY_RULES: dict[str, Rule] = {"exact": _verify_exact, "rejection": _verify_rejection, "typical": _verify_typical}
# Rules whose verdict is the greedy walk over one choice per target row, computable on the logits' device
# (`target_choices`): (draft, target_probs [n+1, vocab], draws) -> choices [n+1].
CHOICE_RULES: dict[str, Callable[[Draft, Tensor, Draws], Tensor]] = {"exact": _exact_choices}
LOSSY_RULES = {"typical"}   # rules whose sampled output does NOT follow the target distribution
SEED_STABLE_RULES = {"exact"}   # rules whose seeded output is vanilla's seeded output whatever the draft
RULE_HELP = {
    "exact": "lossless; a seeded request gives the same tokens with any method, draft size or batch (default)",
    "rejection": "lossless recursive rejection sampling; accepts sampled drafts (draft, layerskip) more often, "
                 "but seeded output depends on the drafts",
    "typical": "lossy typical acceptance; output does not follow the target distribution",
}


def check_rule(rule: str) -> None:
    if rule not in VERIFY_RULES:
        raise ConfigError(f"verification rule {rule!r} is unknown; accepted: {', '.join(sorted(VERIFY_RULES))}.")


def verify_draft(draft: Draft, target_logits: Tensor, sampling: SamplingParams,
                 generator: torch.Generator | None = None, rule: str = "exact", *, position: int = 0,
                 best: list[int] | None = None) -> VerifyResult:
    """Verify one draft against the target's logits.

    target_logits row 0 is the target after the last committed token, row i+1 the target after draft node i;
    `position` is the sequence position that row 0 predicts (the number of committed tokens). Greedy sampling
    (temperature 0) uses exact greedy verification whatever the rule. Otherwise the target logits go through
    ``logits_to_probs(sampling)``; ``draft.draft_probs`` must already be the drafter's distribution after the
    same transform. The position-keyed noise uses ``sampling.seed``, or a seed drawn from `generator` when the
    request has none. Unknown rules raise ConfigError. best: the rows' choices as `target_choices` computed them,
    already read by the caller (the engine reads a whole step's at once); the walk over them is the verdict.
    """
    # target_logits: [n+1, vocab]
    check_rule(rule)
    check_draft(draft, target_logits)
    if best is not None:
        if not (sampling.greedy or rule in CHOICE_RULES):
            raise ValueError(f"choices read by the caller verify greedy sampling and the rules "
                             f"{sorted(CHOICE_RULES)} only, not rule {rule!r}")
        if len(best) != target_logits.shape[0]:
            raise ValueError(f"best has {len(best)} choices for {target_logits.shape[0]} target rows")
        return verify_greedy_choices(draft, best)
    if sampling.greedy:
        return verify_greedy(draft, target_logits)
    # Called without choices, sampling rules run on the CPU, where the engine's generator lives and where they are
    # tested; on a GPU this costs one [n+1, vocab] copy per step. The engine avoids it for the seed-stable rules
    # by computing their choices on the device (`target_choices`) and passing them as `best`.
    draft, target_logits = draft.cpu(), target_logits.cpu()
    seed = sampling.seed if sampling.seed is not None or rule not in SEED_STABLE_RULES else draw_seed(generator)
    return VERIFY_RULES[rule](draft, logits_to_probs(target_logits, sampling), Draws(generator, seed, position))


def target_choices(draft: Draft, target_logits: Tensor, sampling: SamplingParams,
                   generator: torch.Generator | None = None, rule: str = "exact", *, position: int = 0) -> Tensor | None:
    """The target's choice on each row [n+1] where verification is a walk over choices, computed where the logits
    are, with no read by the host: the argmax for greedy sampling, and for a rule in CHOICE_RULES its choices
    ("exact": the position-keyed seeded sample; its noise is an integer hash, the same numbers on any device, and
    the probabilities are the device's own rounding of its logits). None for the other rules, which need the
    distributions themselves (`verify_draft` runs them on the CPU). Arguments as in `verify_draft`; a request
    without a seed draws one from `generator` here, as `verify_draft` would."""
    # target_logits: [n+1, vocab]
    if sampling.greedy:
        return target_logits.argmax(-1)
    if rule not in CHOICE_RULES:
        return None
    seed = sampling.seed if sampling.seed is not None or rule not in SEED_STABLE_RULES else draw_seed(generator)
    return CHOICE_RULES[rule](draft, logits_to_probs(target_logits, sampling), Draws(generator, seed, position))


def draw_seed(generator: torch.Generator | None) -> int:
    """A 62-bit seed from a generator (for a request that has none of its own)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))
