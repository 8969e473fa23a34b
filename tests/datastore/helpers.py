"""Brute-force references for the datastore tests."""

from __future__ import annotations

from collections import Counter


def brute_suffix_array(tokens: list[int]) -> list[int]:
    return sorted(range(len(tokens)), key=lambda i: tokens[i:])


def brute_retrieve(tokens: list[int], separator: int, context: list[int], max_suffix: int, min_suffix: int,
                   depth: int) -> tuple[int, int, Counter]:
    """(match length, occurrences, continuation prefix counts) over all occurrences, by scanning."""
    for length in range(min(max_suffix, len(context)), min_suffix - 1, -1):
        pattern = context[len(context) - length:]
        found = [i for i in range(len(tokens) - length + 1) if tokens[i:i + length] == pattern]
        if found:
            counts = Counter()
            for i in found:
                cont = []
                for tok in tokens[i + length:i + length + depth]:
                    if tok == separator:
                        break
                    cont.append(tok)
                counts.update(tuple(cont[:j]) for j in range(1, len(cont) + 1))
            return length, len(found), counts
    return 0, 0, Counter()
