"""The suffix array against sorting all suffixes, and range search against scanning."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from specdec.datastore.suffix_array import build_suffix_array, suffix_range
from tests.datastore.helpers import brute_suffix_array

token_lists = st.lists(st.integers(0, 3), min_size=0, max_size=80)


@settings(max_examples=150, deadline=None)
@given(token_lists)
def test_suffix_array_equals_sorted_suffixes(tokens):
    sa = build_suffix_array(np.array(tokens, dtype=np.int32))
    assert sa.dtype == np.int32 and sa.tolist() == brute_suffix_array(tokens)


def test_long_repeats_need_many_doubling_rounds():
    tokens = [1] * 300 + [0] + [1] * 299          # suffixes differ only after up to 300 equal tokens
    assert build_suffix_array(np.array(tokens)).tolist() == brute_suffix_array(tokens)


@settings(max_examples=150, deadline=None)
@given(token_lists, st.lists(st.integers(0, 3), min_size=1, max_size=4))
def test_range_holds_exactly_the_occurrences(tokens, pattern):
    arr = np.array(tokens, dtype=np.int32)
    sa = build_suffix_array(arr)
    lo, hi = suffix_range(arr, sa, pattern)
    m = len(pattern)
    assert sorted(sa[lo:hi].tolist()) == [i for i in range(len(tokens) - m + 1) if tokens[i:i + m] == pattern]
