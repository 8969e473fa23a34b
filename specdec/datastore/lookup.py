"""Retrieval from a datastore: the continuations of the longest context suffix found in the corpus, merged
into a trie weighted by frequency (REST, He et al. 2023).

1. Longest match: the longest suffix of the context (max_suffix down to min_suffix tokens) that occurs in
   the corpus. Occurrence is monotone in the length (an occurrence of the last L tokens holds one of the last
   L - 1), so a binary search over the length needs ~log2(max_suffix) suffix-array searches.
2. Candidates: up to max_candidates of its occurrences, evenly spaced over its suffix-array range (which is
   sorted by continuation, so the sample keeps each continuation's share); each gives the next ``depth``
   tokens, cut at the document separator and the corpus end.
3. Trie: every continuation prefix counts the candidates that start with it. The kept nodes are the
   max_nodes best by (count desc, length asc, tokens asc); a prefix never counts less than its extensions
   and is shorter, so the kept set is closed under prefixes: a tree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from specdec.datastore.store import Datastore
from specdec.datastore.suffix_array import suffix_range


@dataclass
class Retrieval:
    match_length: int = 0                 # tokens of the context suffix found in the corpus (0: none)
    occurrences: int = 0                  # corpus occurrences of that suffix
    counts: Counter = field(default_factory=Counter)   # continuation prefix (tuple) -> candidates sharing it
    paths: list[list[int]] = field(default_factory=list)  # leaves of the kept trie as root paths, best first


def longest_match(store: Datastore, context: list[int], max_suffix: int, min_suffix: int) -> tuple[int, int, int]:
    """(L, lo, hi): the longest context suffix of L tokens in [min_suffix, max_suffix] occurring at
    suffix_array[lo:hi]; (0, 0, 0) if none does."""
    best, lo_len, hi_len = (0, 0, 0), min_suffix, min(max_suffix, len(context))
    while lo_len <= hi_len:                              # invariant: lengths < lo_len occur, > hi_len do not
        mid = (lo_len + hi_len) // 2
        lo, hi = suffix_range(store.tokens, store.suffix_array, context[len(context) - mid:])
        if hi > lo:
            best, lo_len = (mid, lo, hi), mid + 1
        else:
            hi_len = mid - 1
    return best


def continuations(store: Datastore, starts: np.ndarray, depth: int) -> list[list[int]]:
    """The up to ``depth`` tokens from each position in ``starts`` [c], cut at the separator / corpus end."""
    n = len(store)
    grid = starts.astype(np.int64)[:, None] + np.arange(depth)[None, :]     # [c, depth]
    tokens = np.asarray(store.tokens[np.minimum(grid, n - 1)])             # [c, depth]
    valid = np.cumprod((grid < n) & (tokens != store.separator), axis=1)    # [c, depth] 1 until the first cut
    return [row[:int(k)].tolist() for row, k in zip(tokens, valid.sum(axis=1))]


def top_paths(counts: Counter, max_nodes: int) -> list[list[int]]:
    """Root paths to the leaves of the max_nodes best prefixes (a prefix-closed set), best leaf first."""
    kept = sorted(counts, key=lambda p: (-counts[p], len(p), p))[:max_nodes]
    inner = {p[:-1] for p in kept}
    return [list(p) for p in kept if p not in inner]


def retrieve(store: Datastore, context: list[int], *, max_suffix: int = 16, min_suffix: int = 2, depth: int = 6,
             max_candidates: int = 200, max_nodes: int = 32) -> Retrieval:
    """Draft paths for ``context`` (token ids, oldest first) from the corpus; empty if nothing matches."""
    length, lo, hi = longest_match(store, context, max_suffix, min_suffix)
    if length == 0 or depth < 1 or max_nodes < 1 or max_candidates < 1:
        return Retrieval(length, hi - lo)
    take = min(max_candidates, hi - lo)
    picks = lo + (np.arange(take, dtype=np.int64) * (hi - lo)) // take         # [take] evenly spaced in range
    starts = np.asarray(store.suffix_array[picks], dtype=np.int64) + length     # [take] continuation starts
    counts = Counter(tuple(c[:i]) for c in continuations(store, starts, depth) for i in range(1, len(c) + 1))
    return Retrieval(length, hi - lo, counts, top_paths(counts, max_nodes))
