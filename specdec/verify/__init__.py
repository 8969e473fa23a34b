"""Verification: pure functions over tensors that decide which draft tokens to keep.

*Accepted* tokens are draft tokens the verifier kept; the *recovered* token is drawn from the residual
distribution at the first rejection; the *bonus* token is the extra target token after a fully accepted
draft. Every step emits ``n_accepted + 1`` tokens. All rules except those in ``LOSSY_RULES`` reproduce the
target distribution exactly (greedy: the identical token sequence).
"""

from specdec.verify.dispatch import (LOSSY_RULES, RULE_HELP, SEED_STABLE_RULES, VERIFY_RULES, check_rule, draw_seed,
                                     target_choices, verify_draft)
from specdec.verify.greedy import verify_chain_greedy_batched, verify_greedy
from specdec.verify.probs import logits_to_probs, sample
from specdec.verify.sampling import verify_chain_sampling_batched
from specdec.verify.seeded import sample_seeded, top_seeded, verify_seeded
from specdec.verify.tree import verify_tree_sampling, verify_tree_sampling_batched
from specdec.verify.typical import verify_typical

__all__ = [
    "LOSSY_RULES", "RULE_HELP", "SEED_STABLE_RULES", "VERIFY_RULES", "check_rule", "draw_seed", "logits_to_probs", "sample",
    "sample_seeded", "target_choices", "top_seeded", "verify_chain_greedy_batched", "verify_seeded",
    "verify_chain_sampling_batched", "verify_draft", "verify_greedy", "verify_tree_sampling",
    "verify_tree_sampling_batched", "verify_typical",
]
