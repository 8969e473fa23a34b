"""Retrieval against brute-force counting: longest match, continuation counts, the kept trie, sampling."""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from specdec.datastore import build_datastore, retrieve
from specdec.drafters.pld import trie_draft
from tests.datastore.helpers import brute_retrieve

SEP = 4
documents = st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=25), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(documents, st.lists(st.integers(0, 3), min_size=0, max_size=12), st.integers(1, 5), st.integers(1, 4),
       st.integers(1, 12))
def test_retrieval_counts_equal_brute_force(docs, context, max_suffix, depth, max_nodes):
    store = build_datastore(docs, separator=SEP, vocab_size=5)
    got = retrieve(store, context, max_suffix=max_suffix, min_suffix=1, depth=depth, max_candidates=10**6,
                   max_nodes=max_nodes)
    length, occurrences, counts = brute_retrieve(store.tokens.tolist(), SEP, context, max_suffix, 1, depth)
    assert (got.match_length, got.occurrences, got.counts) == (length, occurrences, counts)
    best = sorted(counts, key=lambda p: (-counts[p], len(p), p))[:max_nodes]
    kept = {tuple(path[:i]) for path in got.paths for i in range(1, len(path) + 1)}
    assert kept == set(best)                      # the top prefixes, closed under prefixes
    assert trie_draft(got.paths, max_nodes).size == len(best)


def test_min_suffix_and_no_match():
    store = build_datastore([[0, 1, 2, 3]], separator=SEP, vocab_size=5)
    assert retrieve(store, [3, 1], min_suffix=2).match_length == 0      # "3 1" is not in the corpus
    found = retrieve(store, [9, 0, 1], min_suffix=2)
    assert found.match_length == 2 and found.paths == [[2, 3]]          # cut at the separator


def test_candidates_are_spread_over_all_occurrences():
    docs = [[0, 1, 2]] * 300 + [[0, 1, 3]] * 100                        # "0 1" is followed by 2 three times as often
    store = build_datastore(docs, separator=SEP, vocab_size=5)
    found = retrieve(store, [0, 1], min_suffix=2, depth=1, max_candidates=8)
    assert found.occurrences == 400
    assert found.counts == Counter({(2,): 6, (3,): 2}) and found.paths == [[2], [3]]
