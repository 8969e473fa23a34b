"""The engine with many requests at once: each request's tokens are what it would get alone, whatever joins or
leaves around it, and sampling keeps the target distribution at batch > 1.

The drafter is a draft model made of the target's weights plus noise, so drafts are both accepted and rejected
(a drafter that never proposes, or a scheduler that serialises requests, cannot pass: the step reports must
show batches above one and both outcomes).
"""

from __future__ import annotations

import pytest
import torch

from specdec.config import SamplingParams
from specdec.drafters.draft_model import DraftModelDrafter
from specdec.engine import Engine, Request, SpeculativeDecoder
from tests.drafters.test_draft_model import noisy_copy
from tests.test_drafters import NoiseDrafter
from tests.tiny import tiny_target
from tests.verify.helpers import tv_bound, tv_distance
from tests.distribution import exact_two_token_distribution


@pytest.fixture(scope="module")
def pair():
    return tiny_target(vocab=32, layers=2, hidden=32, scale=3.0, seed=5)


def _prompts(n: int, seed: int = 0, vocab: int = 32) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (int(torch.randint(1, 40, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


def _noisy_drafter(hf, i: int, **options) -> DraftModelDrafter:
    return DraftModelDrafter(noisy_copy(hf, 0.4, seed=i), num_draft=3, **options)


def test_eight_greedy_requests_joining_and_leaving_each_return_their_solo_vanilla_output(pair):
    target, hf = pair
    prompts, lengths = _prompts(8), [5, 30, 12, 30, 1, 22, 30, 9]
    solo = [SpeculativeDecoder(target).generate(p, n).token_ids for p, n in zip(prompts, lengths)]
    reports = []
    engine = Engine(target, max_num_seqs=4, max_num_batched_tokens=24, on_step=reports.append)
    requests = [Request(p, n, drafter=_noisy_drafter(hf, i)) for i, (p, n) in enumerate(zip(prompts, lengths))]
    results = {}
    for r in requests[:3]:
        engine.add(r)
    for step in range(10_000):
        if step == 3:
            for r in requests[3:6]:                   # join while others decode
                engine.add(r)
        if step == 9:
            for r in requests[6:]:
                engine.add(r)
        results.update({res.request_id: res for res in engine.step()})
        if not engine.has_work and step > 9:
            break
    assert [results[r.request_id].token_ids for r in requests] == solo
    assert max(r.decoding for r in reports) > 1                        # steps really ran batched
    assert any(r.decoding and r.prefilling for r in reports)           # prompts prefilled beside decode rows
    accepted, drafted = sum(r.accepted_tokens for r in reports), sum(r.draft_tokens for r in reports)
    assert 0 < accepted < drafted                                      # drafts accepted and rejected
    assert engine.free_slots == 4 and not engine.running


def test_generate_many_equals_generate_one_by_one(pair):
    target, hf = pair
    prompts = _prompts(5, seed=3)
    decoder = SpeculativeDecoder(target, NoiseDrafter(32, 3, 2, False, seed=1))
    alone = [SpeculativeDecoder(target).generate(p, 16).token_ids for p in prompts]
    many = decoder.generate_many(prompts, 16, max_num_seqs=3) if hasattr(NoiseDrafter, "fork") else None
    if many is None:                                   # NoiseDrafter has no fork(): the batch refuses it clearly
        with pytest.raises(Exception, match="has no fork"):
            decoder.generate_many(prompts, 16)
        many = SpeculativeDecoder(target).generate_many(prompts, 16, max_num_seqs=3)
    assert [r.token_ids for r in many] == alone


def test_a_seeded_request_gives_the_same_text_alone_in_a_batch_on_a_rerun_and_with_any_draft(pair):
    target, hf = pair
    prompts = _prompts(6, seed=4)
    sampling = [SamplingParams(temperature=0.8, top_p=0.9, seed=s) for s in range(6)]
    alone = [SpeculativeDecoder(target).generate(p, 20, s).token_ids for p, s in zip(prompts, sampling)]
    for run in range(2):
        engine = Engine(target, max_num_seqs=3, max_num_batched_tokens=40)
        requests = [Request(p, 20, s, drafter=_noisy_drafter(hf, i + 10 * run, adaptive=bool(run)))
                    for i, (p, s) in enumerate(zip(prompts, sampling))]
        for r in requests:
            engine.add(r)
        by_id = {res.request_id: res for res in engine.run()}
        assert [by_id[r.request_id].token_ids for r in requests] == alone


def test_greedy_and_seeded_requests_mixed_in_one_batch_each_get_their_solo_output(pair):
    """The engine reads a step's greedy choices in one transfer and verifies sampled requests apart: mixing them
    in one pass must not hand one request's choices to another."""
    target, hf = pair
    prompts = _prompts(6, seed=7)
    sampling = [SamplingParams() if i % 2 else SamplingParams(temperature=0.8, seed=i) for i in range(6)]
    alone = [SpeculativeDecoder(target).generate(p, 20, s).token_ids for p, s in zip(prompts, sampling)]
    reports = []
    engine = Engine(target, max_num_seqs=6, max_num_batched_tokens=64, on_step=reports.append)
    requests = [Request(p, 20, s, drafter=_noisy_drafter(hf, i)) for i, (p, s) in enumerate(zip(prompts, sampling))]
    for r in requests:
        engine.add(r)
    by_id = {res.request_id: res for res in engine.run()}
    assert [by_id[r.request_id].token_ids for r in requests] == alone
    assert max(r.decoding for r in reports) == 6 and 0 < sum(r.accepted_tokens for r in reports)


def test_sampling_keeps_the_target_distribution_at_batch_above_one():
    """Requests with three different sampling settings share every step; each setting's first two tokens
    follow the target's exact two-token distribution within the derived bound."""
    target, hf = tiny_target(vocab=6, layers=1, hidden=16, heads=2, kv_heads=1, scale=2.0, seed=7)
    settings = [SamplingParams(temperature=1.0), SamplingParams(temperature=0.7, top_k=4),
                SamplingParams(temperature=1.3, top_p=0.8)]
    trials, prompt = 2000, [0, 3, 2]
    reports = []
    engine = Engine(target, max_num_seqs=24, max_num_batched_tokens=200, on_step=reports.append)
    requests = []
    for i in range(trials * len(settings)):
        s = settings[i % len(settings)]
        sampling = SamplingParams(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, seed=i)
        requests.append(Request(prompt, 2, sampling, drafter=NoiseDrafter(6, 3, 2, True, seed=i)))
        engine.add(requests[-1])
    by_id = {res.request_id: res.token_ids for res in engine.run()}
    assert max(r.decoding for r in reports) == 24
    for k, s in enumerate(settings):
        ids = [by_id[r.request_id] for r in requests[k::len(settings)]]
        samples = torch.tensor([a * 6 + b for a, b in ids])
        exact = exact_two_token_distribution(target, prompt, s)
        assert tv_distance(samples, exact) < tv_bound(exact.numel(), trials), s


def test_an_aborted_request_frees_its_slot_and_the_others_are_unaffected(pair):
    target, hf = pair
    prompts = _prompts(3, seed=6)
    solo = [SpeculativeDecoder(target).generate(p, 25).token_ids for p in prompts]
    engine = Engine(target, max_num_seqs=2)
    requests = [Request(p, 25, drafter=_noisy_drafter(hf, i)) for i, p in enumerate(prompts)]
    for r in requests:
        engine.add(r)
    engine.step()
    engine.step()
    assert engine.free_slots == 0 and len(engine.waiting) == 1
    engine.abort(requests[0].request_id)
    ended = engine.step()
    assert [(r.request_id, r.finish_reason) for r in ended] == [(requests[0].request_id, "abort")]
    assert engine.free_slots == 0 and not engine.waiting            # the queued request took the freed slot
    by_id = {res.request_id: res for res in engine.run()}
    assert [by_id[r.request_id].token_ids for r in requests[1:]] == solo[1:]


def test_a_queued_request_can_be_aborted_before_it_starts(pair):
    target, _ = pair
    engine = Engine(target, max_num_seqs=1)
    first, second = Request([1, 2, 3], 4), Request([4, 5], 4)
    engine.add(first)
    engine.add(second)
    engine.abort(second.request_id)
    ended = engine.step()
    assert [(r.request_id, r.finish_reason, r.token_ids) for r in ended] == [(second.request_id, "abort", [])]
    assert [r.request_id for r in engine.run()] == [first.request_id]


def test_a_long_prompt_is_prefilled_in_chunks_while_others_keep_decoding(pair):
    target, _ = pair
    short, long = [3, 1, 4], _prompts(1, seed=8)[0] * 5                 # the long prompt: ~100+ tokens
    reports = []
    engine = Engine(target, max_num_seqs=2, max_num_batched_tokens=16, on_step=reports.append)
    a, b = Request(short, 30), Request(long, 5)
    engine.add(a)
    engine.step()
    engine.add(b)
    by_id = {res.request_id: res for res in engine.run()}
    assert by_id[a.request_id].token_ids == SpeculativeDecoder(target).generate(short, 30).token_ids
    assert by_id[b.request_id].token_ids == SpeculativeDecoder(target).generate(long, 5).token_ids
    assert max(r.rows for r in reports) <= 16
    assert sum(1 for r in reports if r.prefilling and r.decoding) >= (len(long) - 1) // 16


def test_q4_batched_greedy_requests_equal_their_solo_runs():
    target, hf = tiny_target(vocab=40, layers=2, hidden=192, heads=3, kv_heads=1, quant="q4", seed=3)
    prompts = _prompts(6, seed=9, vocab=40)
    solo = [SpeculativeDecoder(target).generate(p, 12).token_ids for p in prompts]
    engine = Engine(target, max_num_seqs=6)
    requests = [Request(p, 12, drafter=NoiseDrafter(40, 4, 2, False, seed=i)) for i, p in enumerate(prompts)]
    for r in requests:
        engine.add(r)
    by_id = {res.request_id: res for res in engine.run()}
    assert [by_id[r.request_id].token_ids for r in requests] == solo


@pytest.mark.parametrize("kwargs, message", [
    ({"max_num_seqs": 0}, "max_num_seqs=0 is invalid"),
    ({"max_num_batched_tokens": 2, "max_num_seqs": 4}, "max_num_batched_tokens=2 is below max_num_seqs=4"),
    ({"max_model_len": -1}, "max_model_len=-1 is invalid"),
    ({"rule": "nope"}, "rule 'nope' is unknown"),
])
def test_engine_settings_are_checked(pair, kwargs, message):
    from specdec.errors import ConfigError
    with pytest.raises(ConfigError, match=message):
        Engine(pair[0], **kwargs)


def test_a_request_longer_than_the_model_length_is_refused_at_add(pair):
    from specdec.errors import ContextLengthError
    engine = Engine(pair[0], max_model_len=20)
    with pytest.raises(ContextLengthError, match="maximum model length of 20 tokens"):
        engine.add(Request(list(range(15)), 10))
    assert not engine.has_work
