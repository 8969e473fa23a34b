"""Tree bookkeeping shared by the verifiers: children lists and building a VerifyResult from a path."""

from __future__ import annotations

from specdec.types import Draft, VerifyResult


def children_lists(parents: list[int]) -> list[list[int]]:
    """``result[i + 1]`` = children of node i in index (sibling) order; ``result[0]`` = children of the root."""
    children: list[list[int]] = [[] for _ in range(len(parents) + 1)]
    for node, parent in enumerate(parents):
        children[parent + 1].append(node)
    return children


def result_from_path(draft: Draft, path: list[int], next_token: int, bonus: bool) -> VerifyResult:
    """VerifyResult for accepted node indices ``path`` (root to node) followed by ``next_token``."""
    accepted = [int(draft.tokens[node]) for node in path]
    return VerifyResult(tokens=accepted + [int(next_token)], n_accepted=len(path), accepted_path=list(path),
                        next_token=int(next_token), bonus=bonus)
