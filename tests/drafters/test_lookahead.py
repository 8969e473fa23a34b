"""Lookahead decoding: the n-gram pool and the Jacobi window against brute force, the lookahead branch's mask
and positions (the paper's), the engine's scratch nodes, and the two end-to-end guarantees (greedy identical
to vanilla, sampling keeps the target distribution)."""

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specdec.config import SamplingParams
from specdec.drafters import make_drafter
from specdec.drafters.base import DecodeState
from specdec.drafters.lookahead import LookaheadDrafter, NgramPool, Window
from specdec.engine import SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.tree import tree_inputs
from specdec.types import Draft
from tests.distribution import exact_two_token_distribution
from tests.test_drafters import NoiseDrafter
from tests.tiny import tiny_target
from tests.verify.helpers import tv_bound, tv_distance


def _state(tokens, max_depth=50, max_nodes=100):
    return DecodeState(list(tokens), SamplingParams(), torch.Generator(), max_depth=max_depth, max_nodes=max_nodes)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, 3)] * 3), max_size=40), st.integers(1, 4))
def test_pool_keeps_the_most_recent_distinct_continuations(grams, size):
    pool = NgramPool(size)
    for gram in grams:
        pool.add(gram)
    for first in range(4):
        conts = [g[1:] for g in grams if g[0] == first]
        last_seen = {c: i for i, c in enumerate(conts)}
        assert pool.candidates(first) == sorted(last_seen, key=last_seen.get, reverse=True)[:size]


def _paths(tokens, parents, root):
    """Root-to-node token path of every node, by walking the parent pointers."""
    paths = []
    for i in range(len(tokens)):
        path, node = [], i
        while node >= 0:
            path.append(tokens[node])
            node = parents[node]
        paths.append([root] + path[::-1])
    return paths


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 5), st.integers(3, 5), st.data())
def test_window_ngrams_are_the_columns_paths_plus_the_new_token(w, n, data):
    window = Window(data.draw(st.lists(st.integers(0, 9), min_size=w + n - 3, max_size=w + n - 3)), n - 1)
    for step in range(n + 2):
        tokens, parents = window.tree()
        depths = [len(p) - 1 for p in _paths(tokens, parents, 0)]
        last = len(window.levels[-1])
        new = data.draw(st.lists(st.integers(0, 9), min_size=last, max_size=last))
        root = data.draw(st.integers(0, 9))
        full = window.full
        if full:        # full window: level 0 has W-1 tokens, every other level W; depth of (l, i) is l + i
            assert [len(level) for level in window.levels] == [w - 1] + [w] * (n - 2)
            assert depths[-w:] == [n - 2 + i for i in range(w)]
        paths = _paths(tokens, parents, root)[-last:]
        expected = [tuple(path[-(n - 1):]) + (tok,) for path, tok in zip(paths, new)]
        assert window.advance(new, root) == (expected if full else [])
        assert step < n - 2 or window.full                         # N-2 steps fill the levels


def test_lookahead_branch_mask_and_positions_hand_written():
    """W=2, N=3: level 0 = [a], level 1 = [b0, b1]; a verified chain [v0, v1] before them."""
    drafter = LookaheadDrafter(window=2, ngram=3, max_verify=1)
    drafter.begin([7])
    a, b0, b1, v0, v1 = 1, 2, 3, 4, 5
    drafter.window.levels = [[a], [b0, b1]]
    drafter.pool.add((7, v0, v1))
    draft = drafter.propose(_state([7]))
    assert draft.tokens.tolist() == [v0, v1, a, b0, b1] and draft.n_scratch == 3
    assert draft.parents.tolist() == [-1, 0, -1, -1, 2]
    assert draft.verifiable().tokens.tolist() == [v0, v1] and draft.verifiable().is_chain
    mask, positions = tree_inputs(draft.parents, start=10)
    assert mask.int().tolist() == [[1, 0, 0, 0, 0, 0],       # root
                                   [1, 1, 0, 0, 0, 0],       # v0
                                   [1, 1, 1, 0, 0, 0],       # v1
                                   [1, 0, 0, 1, 0, 0],       # a   (level 0, position +1)
                                   [1, 0, 0, 0, 1, 0],       # b0  (column 0 hangs off the root, +1)
                                   [1, 0, 0, 1, 0, 1]]       # b1  (column 1 hangs off a, +2)
    assert positions.tolist() == [10, 11, 12, 11, 11, 12]


def test_lookahead_branch_is_the_papers_mask_and_positions():
    """W=5, N=4, full window: the paper's rule (level l, column i at root + l + i; it attends the level-0
    tokens before its column and its column's lower levels) equals the tree's ancestor mask and depths."""
    w, n = 5, 4
    drafter = LookaheadDrafter(window=w, ngram=n)
    drafter.begin(list(range(20)))
    drafter.window.levels = [list(range(w - 1))] + [list(range(10 * lv, 10 * lv + w)) for lv in range(1, n - 1)]
    draft = drafter.propose(_state([3]))
    mask, positions = tree_inputs(draft.parents, start=0)
    rows = [("root", 0, 0)] + [(0, k, k + 1) for k in range(w - 1)]
    rows += [(lv, i, lv + i) for lv in range(1, n - 1) for i in range(w)]
    index = {(lv, i): r for r, (lv, i, _) in enumerate(rows)}
    expected = torch.zeros(len(rows), len(rows), dtype=torch.bool)
    for r, (lv, i, _) in enumerate(rows):
        expected[r, 0] = expected[r, r] = True
        if lv == "root":
            continue
        level0 = range(i + 1) if lv == 0 else range(i)
        for k in level0:
            expected[r, index[(0, k)]] = True
        for below in range(1, lv):
            expected[r, index[(below, i)]] = True
    assert torch.equal(mask, expected)
    assert positions.tolist() == [p for _, _, p in rows]


class ScratchProbe(NoiseDrafter):
    """Random verified trees plus a random scratch tree (hanging off the root, verified or scratch nodes);
    records what the engine reports at the scratch rows."""

    def __init__(self, vocab, seed, n_scratch=4):
        super().__init__(vocab, depth=3, branches=2, with_probs=False, seed=seed)
        self.n_scratch, self.seen = n_scratch, []

    def propose(self, state):
        k = min(self.n_scratch, state.max_nodes)
        draft = super().propose(_state(state.tokens, state.max_depth, state.max_nodes - k))
        m, tokens, parents = draft.size, draft.tokens.tolist(), draft.parents.tolist()
        for _ in range(k):
            parents.append(int(torch.randint(-1, len(tokens), (1,), generator=self.gen)))
            tokens.append(int(torch.randint(0, self.vocab, (1,), generator=self.gen)))
        self.pending = (list(state.tokens), tokens, parents, m)
        return Draft(torch.tensor(tokens, dtype=torch.long), torch.tensor(parents, dtype=torch.long), n_scratch=k)

    def on_accept(self, result):
        argmax = result.scratch_argmax if result.scratch_argmax is not None else torch.zeros(0, dtype=torch.long)
        self.seen.append((*self.pending, argmax, result.n_accepted))


def test_scratch_nodes_are_scored_never_accepted_and_report_the_target_argmax():
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, scale=3.0, seed=11)
    rt, vanilla = target.runtime, SpeculativeDecoder(target)
    for seed in range(4):
        prompt = torch.randint(0, 12, (9,), generator=torch.Generator().manual_seed(seed)).tolist()
        probe = ScratchProbe(12, seed)
        res = SpeculativeDecoder(target, probe).generate(prompt, 20)
        assert res.token_ids == vanilla.generate(prompt, 20).token_ids
        assert res.stats.scratch_tokens == sum(len(t) - m for _, t, _, m, _, _ in probe.seen) > 0
        assert res.stats.draft_tokens == sum(m for _, _, _, m, _, _ in probe.seen)
        for context, tokens, parents, m, argmax, n_accepted in probe.seen:
            assert n_accepted <= m and argmax.shape == (len(tokens) - m,)
            for j, path in enumerate(_paths(tokens, parents, context[-1])[m:]):
                logits = rt.forward(torch.tensor([context + path[1:]]), rt.new_cache(64)).logits[0, -1]
                assert logits[int(argmax[j])] >= logits.max() - 1e-4


def test_scratch_count_is_checked():
    with pytest.raises(ValueError, match="n_scratch"):
        Draft(torch.tensor([1, 2]), torch.tensor([-1, 0]), n_scratch=3).verifiable()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(3, 5), st.integers(0, 12), st.integers(0, 40), st.booleans())
def test_never_exceeds_the_budget(w, n, max_depth, max_nodes, pool):
    drafter = LookaheadDrafter(window=w, ngram=n, max_verify=4, prompt_pool=pool)
    prompt = [1, 2, 3, 1, 2, 4, 1, 2, 3, 1]
    drafter.begin(prompt)
    draft = drafter.propose(_state(prompt, max_depth, max_nodes))
    verifiable = draft.verifiable()
    assert draft.size <= max_nodes
    assert verifiable.size == 0 or int(verifiable.depths().max()) <= max_depth


def test_options_and_runtime_are_checked():
    with pytest.raises(ConfigError, match="ngram"):
        LookaheadDrafter(ngram=2)
    with pytest.raises(ConfigError, match="native"):
        make_drafter("lookahead", SimpleNamespace(runtime=SimpleNamespace(supports_tree=False)))


@pytest.mark.parametrize("options", [{}, {"max_verify": 1}, {"window": 2, "ngram": 3},
                                     {"window": 3, "ngram": 5, "adaptive": True}, {"prompt_pool": True}],
                         ids=["default", "chain", "w2-n3", "w3-n5-adaptive", "prompt-pool"])
def test_greedy_equals_vanilla(options):
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, scale=3.0, seed=11)
    vanilla = SpeculativeDecoder(target)
    g = torch.Generator().manual_seed(0)
    accepted = 0
    for _ in range(6):
        prompt = torch.randint(0, 12, (12,), generator=g).tolist()
        spec = SpeculativeDecoder(target, LookaheadDrafter(**options)).generate(prompt, 30)
        assert spec.token_ids == vanilla.generate(prompt, 30).token_ids
        assert spec.stats.scratch_tokens > 0
        accepted += spec.stats.emitted_tokens - spec.stats.target_forwards
    assert accepted > 0                   # the pool's n-grams were really used, not all rejected


@pytest.mark.parametrize("sampling", [SamplingParams(temperature=1.0), SamplingParams(temperature=0.8, top_p=0.9)])
def test_sampling_keeps_the_target_distribution(sampling):
    """First two tokens of 6-token generations: the prompt's n-grams give the root 3 a tree of candidates
    ([2, 0], [2, 5]) verified beside the lookahead branch from the first step on."""
    target, _ = tiny_target(vocab=6, layers=1, hidden=16, heads=2, kv_heads=1, scale=2.0, seed=7)
    prompt, trials, vocab = [0, 3, 2, 0, 3, 2, 5, 0, 3], 2500, 6
    samples = []
    for i in range(trials):
        s = SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, seed=i)
        drafter = LookaheadDrafter(window=2, ngram=3, prompt_pool=True, seed=i)
        ids = SpeculativeDecoder(target, drafter).generate(prompt, 6, s).token_ids
        samples.append(ids[0] * vocab + ids[1])
    exact = exact_two_token_distribution(target, prompt, sampling)
    tv, bound = tv_distance(torch.tensor(samples), exact), tv_bound(exact.numel(), trials)
    assert tv < bound, (tv, bound)
