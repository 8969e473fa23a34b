"""End-to-end distribution check shared by the engine and drafter tests: the first two generated tokens of
speculative sampling vs the target's exact two-token distribution (small vocabulary, enumerated)."""

from __future__ import annotations

import torch

from specdec.config import SamplingParams
from specdec.engine import SpeculativeDecoder
from specdec.verify import logits_to_probs
from tests.verify.helpers import tv_bound, tv_distance


def exact_two_token_distribution(target, prompt: list[int], sampling: SamplingParams) -> torch.Tensor:
    """[vocab * vocab] exact probability of the first two generated tokens under `sampling`."""
    rt, vocab = target.runtime, target.runtime.vocab_size
    first = logits_to_probs(rt.forward(torch.tensor([prompt]), rt.new_cache(64)).logits[0, -1], sampling).cpu()
    joint = torch.zeros(vocab, vocab)
    for a in range(vocab):
        logits = rt.forward(torch.tensor([prompt + [a]]), rt.new_cache(64)).logits[0, -1]
        joint[a] = first[a] * logits_to_probs(logits, sampling).cpu()
    return joint.flatten()


def two_token_tv(target, prompt: list[int], sampling: SamplingParams, drafter_fn, trials: int,
                 rule: str = "exact") -> tuple[float, float]:
    """(TV between empirical and exact two-token distributions, the derived bound for `trials` samples).

    drafter_fn(i) builds a fresh drafter for trial i; trial i samples with seed i under verification `rule`.
    The bound counts the pairs of positive exact probability (the bound's sum over categories has no term for
    the others), so a large vocabulary under top-k sampling still gets a tight bound.
    """
    vocab = target.runtime.vocab_size
    samples = []
    for i in range(trials):
        s = SamplingParams(temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                           min_p=sampling.min_p, seed=i)
        ids = SpeculativeDecoder(target, drafter_fn(i), rule=rule).generate(prompt, 2, s).token_ids
        samples.append(ids[0] * vocab + ids[1])
    exact = exact_two_token_distribution(target, prompt, sampling)
    return tv_distance(torch.tensor(samples), exact), tv_bound(int((exact > 0).sum()), trials)
