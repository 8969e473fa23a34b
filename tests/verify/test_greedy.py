"""Greedy verification: table cases, batched chain vs single, reference agreement, properties."""

import pytest
import torch
from hypothesis import given, settings

from specdec.types import Draft
from specdec.verify import verify_chain_greedy_batched, verify_greedy
from specdec.verify.reference import ref_verify_greedy

from .helpers import is_root_path, random_trees

VOCAB = 10


def logits_with_argmax(argmax_rows):
    """[len, VOCAB] logits whose row r has its maximum at argmax_rows[r]."""
    logits = torch.zeros(len(argmax_rows), VOCAB)
    logits[torch.arange(len(argmax_rows)), torch.tensor(argmax_rows)] = 5.0
    return logits


CHAIN_CASES = [  # (name, draft tokens, target argmax per row, tokens emitted, n_accepted, bonus)
    ("accept all", [5, 2, 7], [5, 2, 7, 1], [5, 2, 7, 1], 3, True),
    ("reject first", [4, 2, 7], [5, 2, 7, 1], [5], 0, False),
    ("reject middle", [5, 3, 7], [5, 2, 7, 1], [5, 2], 1, False),
    ("reject last", [5, 2, 8], [5, 2, 7, 1], [5, 2, 7], 2, False),
    ("empty draft", [], [6], [6], 0, True),
]


@pytest.mark.parametrize("name, draft, argmax, emitted, n_accepted, bonus", CHAIN_CASES,
                         ids=[c[0] for c in CHAIN_CASES])
def test_chain_table(name, draft, argmax, emitted, n_accepted, bonus):
    result = verify_greedy(Draft.chain(torch.tensor(draft, dtype=torch.long)), logits_with_argmax(argmax))
    assert (result.tokens, result.n_accepted, result.bonus) == (emitted, n_accepted, bonus)
    assert result.accepted_path == list(range(n_accepted)) and result.next_token == emitted[-1]
    if draft:
        n, nxt = verify_chain_greedy_batched(torch.tensor([draft]), logits_with_argmax(argmax).unsqueeze(0))
        assert (int(n[0]), int(nxt[0])) == (n_accepted, emitted[-1])


TREE_CASES = [  # (name, tokens, parents, target argmax per row, accepted_path, next_token, bonus)
    # root -> {0: 3, 1: 4}; 0 -> {2: 5}; 1 -> {3: 6, 4: 7}
    ("second branch to a leaf", [3, 4, 5, 6, 7], [-1, -1, 0, 1, 1], [4, 9, 7, 9, 9, 2], [1, 4], 2, True),
    ("first branch, child rejected", [3, 4, 5, 6, 7], [-1, -1, 0, 1, 1], [3, 8, 9, 9, 9, 9], [0], 8, False),
    ("no branch matches", [3, 4, 5, 6, 7], [-1, -1, 0, 1, 1], [1, 9, 9, 9, 9, 9], [], 1, False),
    ("duplicate siblings: first wins", [3, 3, 5, 6], [-1, -1, 0, 1], [3, 9, 9, 6, 9], [0], 9, False),
    ("deep path in a wide tree", [1, 2, 3, 4, 5], [-1, -1, 1, 2, 2], [2, 0, 3, 5, 0, 0], [1, 2, 4], 0, True),
]


@pytest.mark.parametrize("name, tokens, parents, argmax, path, next_token, bonus", TREE_CASES,
                         ids=[c[0] for c in TREE_CASES])
def test_tree_table(name, tokens, parents, argmax, path, next_token, bonus):
    draft = Draft(tokens=torch.tensor(tokens), parents=torch.tensor(parents))
    result = verify_greedy(draft, logits_with_argmax(argmax))
    assert (result.accepted_path, result.next_token, result.bonus) == (path, next_token, bonus)
    assert result.tokens == [tokens[i] for i in path] + [next_token]
    assert ref_verify_greedy(tokens, parents, logits_with_argmax(argmax).tolist()) == (path, next_token, bonus)


def test_batched_chain_matches_single():
    g = torch.Generator().manual_seed(0)
    batch, k, vocab = 300, 4, 3                  # tiny vocab so that matches are common
    draft_tokens = torch.randint(0, vocab, (batch, k), generator=g)
    target_logits = torch.randn(batch, k + 1, vocab, generator=g)
    n_accepted, next_tokens = verify_chain_greedy_batched(draft_tokens, target_logits)
    for b in range(batch):
        result = verify_greedy(Draft.chain(draft_tokens[b]), target_logits[b])
        assert (result.n_accepted, result.next_token) == (int(n_accepted[b]), int(next_tokens[b]))
    assert set(n_accepted.tolist()) == set(range(k + 1))   # every outcome exercised


@settings(max_examples=150, deadline=None)
@given(random_trees())
def test_greedy_properties(case):
    tokens, parents, target_logits, _ = case
    result = verify_greedy(Draft(tokens=tokens, parents=parents), target_logits)
    depth = int(Draft(tokens=tokens, parents=parents).depths().max()) if tokens.numel() else 0
    assert 1 <= len(result.tokens) == result.n_accepted + 1 <= depth + 1
    assert is_root_path(result.accepted_path, parents.tolist())
    # Greedy never changes the output: each emitted token is the target argmax after the path so far,
    # i.e. exactly what vanilla greedy decoding would emit given those rows.
    rows = [0] + [node + 1 for node in result.accepted_path]
    assert result.tokens == [int(target_logits[row].argmax()) for row in rows]
    assert result.bonus == (rows[-1] - 1 not in parents.tolist())
    assert (result.accepted_path, result.next_token, result.bonus) == ref_verify_greedy(
        tokens.tolist(), parents.tolist(), target_logits.tolist())


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"\[n\+1, vocab\] = \[4, vocab\]"):
        verify_greedy(Draft.chain(torch.tensor([1, 2, 3])), torch.zeros(3, VOCAB))
    with pytest.raises(ValueError, match="draft.tokens must lie in"):
        verify_greedy(Draft.chain(torch.tensor([1, VOCAB])), torch.zeros(3, VOCAB))
    with pytest.raises(ValueError, match="parents"):
        verify_greedy(Draft(tokens=torch.tensor([1, 2]), parents=torch.tensor([-1, 1])), torch.zeros(3, VOCAB))
    with pytest.raises(ValueError, match=r"\[batch, k\+1, vocab\]"):
        verify_chain_greedy_batched(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, VOCAB))
