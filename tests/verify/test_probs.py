"""logits_to_probs and sample: exact table cases, agreement with the sort-and-loop reference."""

import math

import pytest
import torch

from specdec.config import SamplingParams
from specdec.verify import logits_to_probs, sample
from specdec.verify.probs import sample_from_uniforms
from specdec.verify.reference import ref_logits_to_probs, ref_sample

from .helpers import tv_bound, tv_distance

LOG4 = [math.log(p) for p in (0.5, 0.3, 0.15, 0.05)]   # softmax(LOG4) = [0.5, 0.3, 0.15, 0.05]

CASES = [  # (name, logits, sampling, expected probs)
    ("greedy", [1.0, 3.0, 2.0], SamplingParams(temperature=0.0), [0, 1, 0]),
    ("greedy ties -> first", [3.0, 1.0, 3.0], SamplingParams(), [1, 0, 0]),
    ("temperature 1", [0.0, math.log(2)], SamplingParams(temperature=1.0), [1 / 3, 2 / 3]),
    ("temperature 0.5 sharpens", [0.0, math.log(2)], SamplingParams(temperature=0.5), [1 / 5, 4 / 5]),
    ("temperature 2 flattens", [0.0, math.log(4)], SamplingParams(temperature=2.0), [1 / 3, 2 / 3]),
    ("top-k 2", [1.0, 2.0, 3.0, 0.0], SamplingParams(temperature=1.0, top_k=2),
     [0, 1 / (1 + math.e), math.e / (1 + math.e), 0]),
    ("top-k >= vocab is off", LOG4, SamplingParams(temperature=1.0, top_k=9), [0.5, 0.3, 0.15, 0.05]),
    ("top-p 0.4 keeps top token", LOG4, SamplingParams(temperature=1.0, top_p=0.4), [1, 0, 0, 0]),
    ("top-p 0.7", LOG4, SamplingParams(temperature=1.0, top_p=0.7), [0.625, 0.375, 0, 0]),
    ("top-p 0.9", LOG4, SamplingParams(temperature=1.0, top_p=0.9), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]),
    ("top-p tiny", LOG4, SamplingParams(temperature=1.0, top_p=0.01), [1, 0, 0, 0]),
    ("min-p 0.2", LOG4, SamplingParams(temperature=1.0, min_p=0.2), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]),
    ("min-p 0.5", LOG4, SamplingParams(temperature=1.0, min_p=0.5), [0.625, 0.375, 0, 0]),
    # top-k 3 leaves [0.5, 0.3, 0.15] / 0.95 = [.526, .316, .158]; top-p 0.8 then drops the third (.842 >= .8)
    ("top-k 3 then top-p 0.8", LOG4, SamplingParams(temperature=1.0, top_k=3, top_p=0.8), [0.625, 0.375, 0, 0]),
    ("temperature before top-p", LOG4, SamplingParams(temperature=0.5, top_p=0.7),   # [.25,.09,.0225,.0025]/.365
     [0.25 / 0.34, 0.09 / 0.34, 0, 0]),
]


@pytest.mark.parametrize("name, logits, sampling, expected", CASES, ids=[c[0] for c in CASES])
def test_logits_to_probs_table(name, logits, sampling, expected):
    probs = logits_to_probs(torch.tensor(logits), sampling)
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs, torch.tensor(expected, dtype=torch.float32), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(ref_logits_to_probs(logits, sampling), dtype=torch.float32),
                               torch.tensor(expected, dtype=torch.float32), atol=1e-6, rtol=0)


def test_batched_shapes_match_rows():
    logits = torch.randn(2, 3, 11, generator=torch.Generator().manual_seed(0))
    sampling = SamplingParams(temperature=0.8, top_k=6, top_p=0.9, min_p=0.02)
    probs = logits_to_probs(logits, sampling)
    assert probs.shape == logits.shape
    for row, out in zip(logits.view(-1, 11), probs.view(-1, 11)):
        torch.testing.assert_close(out, logits_to_probs(row, sampling))
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3))


@pytest.mark.parametrize("temperature", [0.0, 0.3, 1.0, 1.7])
@pytest.mark.parametrize("top_k, top_p, min_p", [(0, 1.0, 0.0), (5, 1.0, 0.0), (0, 0.75, 0.0), (0, 1.0, 0.1),
                                                  (8, 0.9, 0.05)])
def test_fast_matches_reference(temperature, top_k, top_p, min_p):
    sampling = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    logits = 2.0 * torch.randn(40, 16, generator=torch.Generator().manual_seed(7))
    fast = logits_to_probs(logits, sampling)
    reference = torch.tensor([ref_logits_to_probs(row, sampling) for row in logits.tolist()])
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)
    assert torch.equal(fast > 0, reference > 0)   # identical support


def test_rejects_scalar_logits():
    with pytest.raises(ValueError, match="vocab"):
        logits_to_probs(torch.tensor(1.0), SamplingParams(temperature=1.0))


def test_sample_from_uniforms_matches_reference_and_skips_zero_weights():
    g = torch.Generator().manual_seed(3)
    weights = torch.rand(500, 7, generator=g) * (torch.rand(500, 7, generator=g) > 0.5)
    weights[:, 3] += 0.01                                            # every row has mass
    uniforms = torch.rand(500, generator=g)
    tokens = sample_from_uniforms(weights, uniforms)
    assert tokens.shape == (500,)
    assert bool((weights.gather(1, tokens.view(-1, 1)) > 0).all())
    expected = [ref_sample(w, float(u)) for w, u in zip(weights.tolist(), uniforms.tolist())]
    assert tokens.tolist() == expected
    edge = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]])
    assert sample_from_uniforms(edge, torch.tensor([0.0])).tolist() == [1]
    assert sample_from_uniforms(edge, torch.tensor([1.0])).tolist() == [3]   # u = 1 (rounding) -> last positive


def test_sample_distribution():
    probs = torch.tensor([0.1, 0.0, 0.45, 0.25, 0.2])
    trials = 100_000
    tokens = sample(probs.expand(trials, 5), torch.Generator().manual_seed(11))
    assert tv_distance(tokens, probs) < tv_bound(5, trials)


def test_uniforms_come_from_the_generator_on_its_own_device():
    """The engine's generator lives on the CPU; draws for a model on another device must come from it (not
    fail), and equal the CPU draws, so a seed samples alike on a CPU and a GPU."""
    from specdec.verify.probs import uniforms_like
    a = uniforms_like((3, 4), torch.Generator().manual_seed(7), torch.device("cpu"))
    b = torch.rand((3, 4), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert uniforms_like((), None, torch.device("cpu")).shape == ()
