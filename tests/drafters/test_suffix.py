"""Suffix decoding: the tries against brute force on random strings, eviction bounds the global trie, drafts
within the engine's bounds, learning from ended requests (and opting out), and the two end-to-end guarantees
(greedy identical to vanilla, alone and in a batch; sampling keeps the target distribution)."""

import json
import random

import pytest
import torch

from specdec.config import SamplingParams
from specdec.drafters import make_drafter
from specdec.drafters.base import DecodeState
from specdec.drafters.suffix import GlobalTrie, IncrementalTrie, SuffixDrafter, SuffixTrie
from specdec.engine import Engine, Request, SpeculativeDecoder
from specdec.errors import ConfigError
from specdec.types import VerifyResult
from tests.distribution import two_token_tv
from tests.tiny import tiny_target


def brute_counts(seqs: list[list[int]], depth: int) -> dict[tuple[int, ...], int]:
    counts: dict[tuple[int, ...], int] = {}
    for s in seqs:
        for i in range(len(s)):
            for n in range(1, depth + 1):
                if i + n <= len(s):
                    key = tuple(s[i:i + n])
                    counts[key] = counts.get(key, 0) + 1
    return counts


def trie_counts(trie: SuffixTrie) -> dict[tuple[int, ...], int]:
    out, stack = {}, [((), trie.root)]
    while stack:
        path, node = stack.pop()
        for tok, child in (node.children or {}).items():
            out[path + (tok,)] = child.count
            stack.append((path + (tok,), child))
    return out


def brute_match(seqs: list[list[int]], context: list[int], depth: int, min_match: int) -> int:
    """Length of the longest suffix of context (min_match <= n < depth) followed by some token somewhere."""
    for n in range(min(depth - 1, len(context)), min_match - 1, -1):
        suffix = context[len(context) - n:]
        if any(s[i:i + n] == suffix and i + n < len(s) for s in seqs for i in range(len(s))):
            return n
    return 0


@pytest.mark.parametrize("seed", range(5))
def test_tries_count_every_substring_like_brute_force(seed):
    rng = random.Random(seed)
    depth = rng.choice([2, 3, 5, 8])
    seqs = [[rng.randrange(4) for _ in range(rng.randrange(1, 40))] for _ in range(4)]
    trie = SuffixTrie(depth)
    for s in seqs:
        trie.add(s)
    expected = brute_counts(seqs, depth)
    assert trie_counts(trie) == expected and trie.nodes == len(expected)
    grown, whole = IncrementalTrie(depth), seqs[0]
    at = 0
    while at < len(whole):                                  # appended in random chunks, as steps commit tokens
        step = rng.randrange(1, 5)
        grown.extend(whole[at:at + step])
        at += step
        ctx = whole[:at]
        assert trie_counts(grown) == brute_counts([ctx], depth) and grown.nodes == len(brute_counts([ctx], depth))
        assert grown.match(ctx, 1)[1] == brute_match([ctx], ctx, depth, 1)
    for context in ([rng.randrange(4) for _ in range(6)] for _ in range(20)):
        _, n = trie.match(context, 1)
        assert n == brute_match(seqs, context, depth, 1)


def test_removing_what_was_added_restores_the_trie_and_eviction_bounds_it():
    rng = random.Random(1)
    trie = SuffixTrie(6)
    a, b = [rng.randrange(5) for _ in range(50)], [rng.randrange(5) for _ in range(30)]
    trie.add(a)
    trie.add(b)
    trie.remove(a)
    assert trie_counts(trie) == brute_counts([b], 6) and trie.nodes == len(brute_counts([b], 6))
    bounded = GlobalTrie(6, max_nodes=400)
    responses = [[rng.randrange(50) for _ in range(40)] for _ in range(30)]
    for r in responses:
        bounded.learn(r)
        assert bounded.nodes <= 400
    kept = list(bounded.responses)
    assert 0 < len(kept) < len(responses) and kept == responses[-len(kept):]      # oldest went first
    assert trie_counts(bounded) == brute_counts(kept, 6)


def state(tokens, max_depth=16, max_nodes=16):
    return DecodeState(tokens, SamplingParams(), torch.Generator(), max_depth=max_depth, max_nodes=max_nodes)


def test_proposes_the_most_frequent_continuations_within_the_bounds():
    drafter = SuffixDrafter(depth=8, min_match=2, max_spec_factor=4, min_prob=0.0)
    history = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 7, 8, 1, 2]        # longest repeated suffix: 1 2
    drafter.begin(history)
    draft = drafter.propose(state(history))
    assert draft.draft_probs is None and drafter.source == "request"
    assert draft.tokens[:3].tolist() == [3, 4, 5] and draft.parents[:3].tolist() == [-1, 0, 1]   # 2 of 3 times
    assert 7 in draft.tokens.tolist()                                                  # the rarer branch too
    conf = draft.confidence.tolist()
    assert all(0 < c <= 1 for c in conf) and conf[0] >= conf[1] >= conf[2]
    small = drafter.propose(state(history, max_depth=2, max_nodes=3))
    assert small.size <= 3 and int(small.depths().max()) <= 2
    assert drafter.propose(state(history + [6, 6])).size == 0                          # no match: plain step
    bounded = SuffixDrafter(depth=8, min_match=2, max_spec_factor=1, min_prob=0.0)
    bounded.begin(history)
    assert bounded.propose(state(history)).size == 2                                   # factor x match length


def test_learns_from_ended_requests_unless_told_not_to(tmp_path):
    target, _ = tiny_target(vocab=12, layers=1, hidden=16, heads=2, kv_heads=1, seed=3)
    drafter = make_drafter("suffix", target, {})
    engine = Engine(target, max_num_seqs=2)
    secret = Request([1, 2, 3], 12, drafter=drafter.fork(), learn=False)
    shared = Request([4, 5, 6], 12, drafter=drafter.fork())
    engine.add(secret)
    engine.add(shared)
    results = {r.request_id: r for r in engine.run()}
    assert list(drafter.global_trie.responses) == [results[shared.request_id].token_ids]
    warm = tmp_path / "responses.jsonl"
    warm.write_text(json.dumps({"output_ids": [7, 8, 9, 10]}) + "\n\n" + json.dumps({"output_ids": [7, 8, 1]}))
    warmed = make_drafter("suffix", target, {"warm": str(warm)})
    assert list(warmed.global_trie.responses) == [[7, 8, 9, 10], [7, 8, 1]]
    warmed.begin([3, 7, 8])
    assert warmed.propose(state([3, 7, 8])).tokens[0].item() in (9, 1) and warmed.source == "global"
    off = make_drafter("suffix", target, {"learn": False})
    off.end([1, 2, 3])
    assert not off.global_trie.responses


def test_calibration_moves_confidence_towards_measured_acceptance():
    drafter = SuffixDrafter(depth=8, min_match=1, min_prob=0.0)
    history = [1, 2, 3, 1, 2, 3, 1, 2]
    drafter.begin(history)
    first = drafter.propose(state(history)).confidence[0].item()
    for _ in range(20):                                   # the confident root child is never accepted
        drafter.propose(state(history))
        drafter.on_accept(VerifyResult([5], 0, [], 1, False))
    assert drafter.propose(state(history)).confidence[0].item() < first / 2


def test_option_errors(tmp_path):
    target, _ = tiny_target(vocab=12, layers=1, hidden=16, heads=2, kv_heads=1)
    with pytest.raises(ConfigError, match="min_match=9 is invalid"):
        make_drafter("suffix", target, {"min_match": 9, "depth": 8})
    with pytest.raises(ConfigError, match="min_prob=1.5"):
        make_drafter("suffix", target, {"min_prob": 1.5})
    with pytest.raises(ConfigError, match="is not a file"):
        make_drafter("suffix", target, {"warm": str(tmp_path / "none.jsonl")})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": 1}\n')
    with pytest.raises(ConfigError, match="bad.jsonl:1 has no output_ids"):
        make_drafter("suffix", target, {"warm": str(bad)})


@pytest.fixture(scope="module")
def greedy_setup():
    """A tiny target, prompts that repeat themselves, and their vanilla greedy outputs."""
    target, _ = tiny_target(vocab=12, layers=2, hidden=32, scale=3.0, seed=11)
    g = torch.Generator().manual_seed(1)
    prompts = []
    for _ in range(5):
        part = torch.randint(0, 12, (6,), generator=g).tolist()
        prompts.append(part * 2 + part[:3])
    vanilla = [SpeculativeDecoder(target).generate(p, 24).token_ids for p in prompts]
    return target, prompts, vanilla


@pytest.mark.parametrize("options", [{}, {"depth": 4, "max_draft": 3, "min_prob": 0.0, "max_spec_factor": 8}])
def test_greedy_equals_vanilla_alone_and_in_a_batch(greedy_setup, options):
    target, prompts, vanilla = greedy_setup
    drafter = make_drafter("suffix", target, options)
    accepted = 0
    for _ in range(2):                                   # the second round also drafts from the first's outputs
        for prompt, expected in zip(prompts, vanilla):
            spec = SpeculativeDecoder(target, drafter).generate(prompt, 24)
            assert spec.token_ids == expected
            accepted += spec.stats.emitted_tokens - spec.stats.target_forwards
    assert accepted > 0                                  # the drafts were really used, not all rejected
    batched = SpeculativeDecoder(target, drafter).generate_many(prompts, 24, max_num_seqs=3)
    assert [r.token_ids for r in batched] == vanilla


def test_sampling_keeps_the_target_distribution():
    target, _ = tiny_target(vocab=6, layers=1, hidden=16, heads=2, kv_heads=1, scale=2.0, seed=7)
    prompt = [0, 3, 2, 0, 3, 2, 5, 0, 3, 1, 0, 3, 2]
    warm = [[0, 3, 4, 1], [0, 3, 2, 2], [3, 1, 5, 0]]

    def drafter(i):
        d = SuffixDrafter(depth=6, min_match=1, min_prob=0.0)
        d.warm(warm)
        return d

    sampling = SamplingParams(temperature=0.9, top_p=0.95)
    tv, bound = two_token_tv(target, prompt, sampling, drafter, 2000)
    assert tv < bound, (tv, bound)
