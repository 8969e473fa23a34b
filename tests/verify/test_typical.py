"""Typical acceptance (LOSSY, opt-in): table cases, reference agreement, greedy equivalence at temperature 0."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specdec.config import SamplingParams
from specdec.types import Draft
from specdec.verify import logits_to_probs, verify_greedy, verify_typical
from specdec.verify.reference import ref_typical
from specdec.verify.typical import verify_typical_from_uniform

from .helpers import is_root_path, random_trees

T = torch.tensor
PEAKED = [0.9, 0.05, 0.05, 0.0]      # entropy .394 -> cutoff min(.09, .3 * .674) = .09: only token 0 passes
UNIFORM = [0.25, 0.25, 0.25, 0.25]   # entropy ln 4 -> cutoff min(.09, .3 / 4) = .075: every token passes
TWO_PEAKS = [0.02, 0.02, 0.48, 0.48]  # cutoff .09: tokens 2 and 3 pass
ONE_HOT = [0.0, 0.0, 0.0, 1.0]       # entropy 0 -> cutoff .09: token 3 passes

CASES = [  # (name, tokens, parents, target rows, uniform, accepted_path, next_token, bonus)
    ("chain accept all", [0, 3], [-1, 0], [PEAKED, UNIFORM, ONE_HOT], 0.5, [0, 1], 3, True),
    ("chain reject first", [1, 3], [-1, 0], [PEAKED, UNIFORM, ONE_HOT], 0.0, [], 0, False),
    ("chain reject middle", [0, 1, 2], [-1, 0, 1], [PEAKED, TWO_PEAKS, UNIFORM, UNIFORM], 0.99, [0], 3, False),
    # root -> {0: token 2, 1: token 3} (both pass under TWO_PEAKS); only node 1 has an accepted child (node 3)
    ("tree: longest accepted path wins", [2, 3, 1, 0], [-1, -1, 0, 1], [TWO_PEAKS, PEAKED, PEAKED, UNIFORM, ONE_HOT],
     0.0, [1, 3], 3, True),
    ("tree: tie -> first", [2, 3, 0, 0], [-1, -1, 0, 1], [TWO_PEAKS, PEAKED, PEAKED, ONE_HOT, ONE_HOT],
     0.0, [0, 2], 3, True),
]


@pytest.mark.parametrize("name, tokens, parents, rows, uniform, path, next_token, bonus", CASES,
                         ids=[c[0] for c in CASES])
def test_typical_table(name, tokens, parents, rows, uniform, path, next_token, bonus):
    result = verify_typical_from_uniform(Draft(T(tokens), T(parents)), T(rows), T(uniform))
    assert (result.accepted_path, result.next_token, result.bonus) == (path, next_token, bonus)
    assert result.tokens == [tokens[i] for i in path] + [next_token]
    assert ref_typical(tokens, parents, rows, uniform) == (path, next_token, bonus)


# row [.2, .8]: entropy .500, exp(-entropy) = .606; draft token 0 has target prob .2
THRESHOLD_CASES = [  # (posterior_threshold, posterior_alpha, accepted)
    (0.09, 0.3, 1),    # Medusa defaults: cutoff min(.09, .182) = .09
    (0.25, 0.3, 1),    # cutoff min(.25, .182) = .182 < .2
    (0.19, 1.0, 1),    # cutoff min(.19, .606) = .19 < .2
    (0.21, 1.0, 0),    # cutoff .21 > .2
    (0.5, 0.5, 0),     # cutoff min(.5, .303) = .303 > .2
]


@pytest.mark.parametrize("threshold, alpha, accepted", THRESHOLD_CASES)
def test_thresholds(threshold, alpha, accepted):
    rows = T([[0.2, 0.8], [0.5, 0.5]])
    result = verify_typical_from_uniform(Draft.chain(T([0])), rows, T(0.0), threshold, alpha)
    assert result.n_accepted == accepted


@settings(max_examples=150, deadline=None)
@given(random_trees(max_nodes=7, vocab=4, with_probs=False), st.floats(0.0, 0.999))
def test_matches_reference_and_properties(case, uniform):
    tokens, parents, target_logits, _ = case
    target_probs = torch.softmax(target_logits, -1)
    result = verify_typical_from_uniform(Draft(tokens, parents), target_probs, T(uniform))
    assert (result.accepted_path, result.next_token, result.bonus) == ref_typical(
        tokens.tolist(), parents.tolist(), target_probs.tolist(), uniform)
    depth = int(Draft(tokens, parents).depths().max()) if tokens.numel() else 0
    assert 1 <= len(result.tokens) == result.n_accepted + 1 <= depth + 1
    assert is_root_path(result.accepted_path, parents.tolist())


@settings(max_examples=100, deadline=None)
@given(random_trees(max_nodes=7, vocab=3, with_probs=False), st.integers(0, 1000))
def test_temperature_zero_is_greedy(case, seed):
    """With one-hot target_probs (temperature 0) typical acceptance reduces to greedy verification."""
    tokens, parents, target_logits, _ = case
    draft = Draft(tokens, parents)
    one_hot = logits_to_probs(target_logits, SamplingParams(temperature=0.0))
    typical = verify_typical(draft, one_hot, torch.Generator().manual_seed(seed))
    greedy = verify_greedy(draft, target_logits)
    # Every emitted token is the target argmax after the path so far (greedy never changes the output) ...
    rows = [0] + [node + 1 for node in typical.accepted_path]
    assert typical.tokens == [int(target_logits[row].argmax()) for row in rows]
    # ... and with distinct sibling tokens the matching path is unique, so both verifiers take it.
    siblings = list(zip(parents.tolist(), tokens.tolist()))
    if len(set(siblings)) == len(siblings):
        assert (typical.tokens, typical.accepted_path) == (greedy.tokens, greedy.accepted_path)


def test_docstring_says_lossy():
    assert "LOSSY" in verify_typical.__doc__
