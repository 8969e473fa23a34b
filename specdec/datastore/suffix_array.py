"""Suffix array of a token sequence: built by prefix doubling, searched by binary search.

The suffix array ``sa`` lists the start positions of all suffixes of ``tokens`` in lexicographic order (a
suffix that is a prefix of another sorts first). All occurrences of a pattern then form one contiguous range
``sa[lo:hi]``, found with two binary searches.
"""

from __future__ import annotations

import numpy as np

MAX_TOKENS = 2**31 - 1          # positions are stored as int32


def build_suffix_array(tokens: np.ndarray) -> np.ndarray:
    """[n] int32 suffix start positions in lexicographic order of the suffixes of ``tokens`` [n].

    Prefix doubling: after the round with step k, ``rank[i]`` orders suffixes by their first 2k tokens.
    Sorting the pairs (rank[i], rank[i + k]) (a missing second half ranks lowest) doubles the compared length;
    when all ranks differ the order is final. O(n log n) per round, at most log2(n) + 1 rounds. Each round
    sorts in the previous round's order, where the keys are already sorted runs, so the stable sort is fast.
    """
    n = int(tokens.shape[0])
    if n > MAX_TOKENS:
        raise ValueError(f"{n} tokens exceed the int32 suffix array limit of {MAX_TOKENS}")
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    rank = np.unique(np.asarray(tokens), return_inverse=True)[1].astype(np.int64).reshape(-1)  # [n] in [0, n)
    sa, k = np.argsort(rank, kind="stable"), 1           # [n] sorted by the first token
    while True:
        second = np.zeros(n, dtype=np.int64)               # [n] rank[i + k] + 1, 0 past the end
        if k < n:
            second[:n - k] = rank[k:] + 1
        key = rank * (n + 1) + second                      # [n] < (n + 1)^2, fits int64 for n < 2^31
        sorted_key = key[sa]                               # already ordered by rank: sorting it is cheap
        order = np.argsort(sorted_key, kind="stable")      # [n] (timsort exploits the sorted runs)
        sa, sorted_key = sa[order], sorted_key[order]
        new_rank = np.empty(n, dtype=np.int64)
        new_rank[sa] = np.concatenate(([0], np.cumsum(sorted_key[1:] != sorted_key[:-1])))
        rank = new_rank
        if int(rank.max()) == n - 1 or k >= n:             # all distinct: the order is total
            return sa.astype(np.int32)
        k *= 2


def suffix_range(tokens: np.ndarray, sa: np.ndarray, pattern: list[int]) -> tuple[int, int]:
    """(lo, hi): ``sa[lo:hi]`` are exactly the positions where ``pattern`` occurs in ``tokens`` [n].

    Compares ``tokens[s : s + m]`` with the pattern as Python lists, so a suffix cut short by the end of the
    corpus sorts before the pattern it is a prefix of (consistent with the suffix order).
    """
    m = len(pattern)

    def below(i: int, strict: bool) -> bool:           # is suffix sa[i] (first m tokens) < pattern (<= if not strict)
        s = int(sa[i])
        head = tokens[s:s + m].tolist()
        return head < pattern if strict else head <= pattern

    def first_not(strict: bool) -> int:
        lo, hi = 0, int(sa.shape[0])
        while lo < hi:
            mid = (lo + hi) // 2
            if below(mid, strict):
                lo = mid + 1
            else:
                hi = mid
        return lo

    return first_not(strict=True), first_not(strict=False)
