"""Chain speculative sampling: exact table cases, reference agreement, statistical losslessness."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specdec.config import SamplingParams
from specdec.verify import sample, verify_chain_sampling_batched
from specdec.verify.reference import ref_chain_sampling
from specdec.verify.sampling import verify_chain_sampling_from_uniforms

from .helpers import markov_model, tv_bound, tv_distance

T = torch.tensor
# target rows [k+1, 4] and draft rows [k, 4] shared by the table cases (k = 2, draft tokens [0, 1])
TARGET = T([[0.5, 0.5, 0.0, 0.0], [0.2, 0.6, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4]])
DRAFT = T([[0.9, 0.1, 0.0, 0.0], [0.1, 0.3, 0.3, 0.3]])

CASES = [  # (name, draft tokens, draft_probs, uniforms [k+1], n_accepted, next_token)
    # depth 0: ratio 0.5/0.9 = .556; depth 1: ratio 0.6/0.3 >= 1 (always accepted)
    ("accept all, bonus from target[k]", [0, 1], DRAFT, [0.5, 0.99, 0.45], 2, 2),   # cdf [.1,.3,.6,1]
    ("reject first, recovered from residual", [0, 1], DRAFT, [0.6, 0.0, 0.0], 0, 1),  # residual [0,.4,0,0]
    ("target has no mass on the draft token", [2, 1], T([[0.0, 0.0, 1.0, 0.0], [0.1, 0.3, 0.3, 0.3]]),
     [0.0, 0.0, 0.99], 0, 1),                                                       # residual = [.5, .5, 0, 0]
    ("reject middle", [0, 2], DRAFT, [0.1, 0.7, 0.5], 1, 1),    # ratio .2/.3; residual [.1,.3,0,0] -> u*.4=.2
    ("draft_probs None accepts with prob target[x]", [1, 1], None, [0.49, 0.59, 0.0], 2, 0),
    ("draft_probs None rejects, draft token removed", [1, 1], None, [0.51, 0.0, 0.99], 0, 0),  # residual [.5,0,0,0]
    ("residual all zero falls back to target", [0, 1], T([[0.5, 0.5, 0.0, 0.0], [0.1, 0.3, 0.3, 0.3]]),
     [1.0, 0.0, 0.6], 0, 1),                                     # u = 1 forces a rejection with target == draft
]


@pytest.mark.parametrize("name, tokens, draft_probs, uniforms, n_accepted, next_token", CASES,
                         ids=[c[0] for c in CASES])
def test_chain_table(name, tokens, draft_probs, uniforms, n_accepted, next_token):
    batched = None if draft_probs is None else draft_probs.unsqueeze(0)
    n, nxt = verify_chain_sampling_from_uniforms(T([tokens]), batched, TARGET.unsqueeze(0), T([uniforms]))
    assert (int(n[0]), int(nxt[0])) == (n_accepted, next_token)
    ref_probs = None if draft_probs is None else draft_probs.tolist()
    assert ref_chain_sampling(tokens, ref_probs, TARGET.tolist(), uniforms) == (n_accepted, next_token)


@pytest.mark.parametrize("with_probs", [True, False])
def test_matches_reference_with_same_uniforms(with_probs):
    g = torch.Generator().manual_seed(1)
    batch, k, vocab = 2000, 4, 5
    target_probs = torch.softmax(2 * torch.randn(batch, k + 1, vocab, generator=g), -1)
    draft_probs = torch.softmax(2 * torch.randn(batch, k, vocab, generator=g), -1)
    draft_tokens = sample(draft_probs, g)
    uniforms = torch.rand(batch, k + 1, generator=g)
    dp = draft_probs if with_probs else None
    n_accepted, next_tokens = verify_chain_sampling_from_uniforms(draft_tokens, dp, target_probs, uniforms)
    for b in range(batch):
        expected = ref_chain_sampling(draft_tokens[b].tolist(), draft_probs[b].tolist() if with_probs else None,
                                      target_probs[b].tolist(), uniforms[b].tolist())
        assert (int(n_accepted[b]), int(next_tokens[b])) == expected
    assert set(n_accepted.tolist()) == set(range(k + 1))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 5), st.integers(2, 6), st.booleans(), st.integers(0, 2**31 - 1))
def test_properties(k, vocab, with_probs, seed):
    """n_accepted in 0..k, so 1..k+1 tokens are emitted, and the accepted tokens are a draft prefix."""
    g = torch.Generator().manual_seed(seed)
    batch = 64
    target_probs = torch.softmax(2 * torch.randn(batch, k + 1, vocab, generator=g), -1)
    draft_probs = torch.softmax(2 * torch.randn(batch, k, vocab, generator=g), -1)
    draft_tokens = sample(draft_probs, g) if k else torch.zeros(batch, 0, dtype=torch.long)
    n_accepted, next_tokens = verify_chain_sampling_batched(draft_tokens, draft_probs if with_probs else None,
                                                            target_probs, g)
    assert n_accepted.shape == next_tokens.shape == (batch,)
    assert bool(((0 <= n_accepted) & (n_accepted <= k)).all())
    assert bool(((0 <= next_tokens) & (next_tokens < vocab)).all())
    # the next token always has positive target mass at its depth (never a token the target rules out)
    rows = target_probs[torch.arange(batch), n_accepted]
    assert bool((rows.gather(1, next_tokens.view(-1, 1)) > 0).all())


# ---- statistical tests --------------------------------------------------------------------------------
# A Markov-chain "language": target[a] / drafter[a] = next-token distribution after token a, both after the
# same logits_to_probs transform. A trial drafts k tokens from the drafter and verifies them once.
VOCAB, K, TRIALS, ROOT = 6, 3, 200_000, 0
SAMPLINGS = {
    "t=1": SamplingParams(temperature=1.0),
    "t=0.6,top_k=4": SamplingParams(temperature=0.6, top_k=4),
    "t=1.4,top_p=0.8": SamplingParams(temperature=1.4, top_p=0.8),
    "t=1,min_p=0.2": SamplingParams(temperature=1.0, min_p=0.2),
}


def chain_step(target, drafter, roots, generator, deterministic=False, verifier=verify_chain_sampling_batched):
    """One verification per root: returns (draft_tokens [N, K], n_accepted [N], next_tokens [N])."""
    context, tokens, draft_rows = roots, [], []
    for _ in range(K):
        row = drafter[context]                                                # [N, vocab]
        token = row.argmax(-1) if deterministic else sample(row, generator)
        tokens.append(token)
        draft_rows.append(row)
        context = token
    draft_tokens = torch.stack(tokens, 1)                                     # [N, K]
    target_probs = target[torch.cat([roots.view(-1, 1), draft_tokens], 1)]    # [N, K+1, vocab]
    draft_probs = None if deterministic else torch.stack(draft_rows, 1)       # [N, K, vocab]
    n_accepted, next_tokens = verifier(draft_tokens, draft_probs, target_probs, generator)
    return draft_tokens, n_accepted, next_tokens


def first_two_tokens(target, drafter, generator, deterministic=False, verifier=verify_chain_sampling_batched):
    """[N, 2] first two emitted tokens; trials that emitted one token continue with a second step."""
    roots = torch.full((TRIALS,), ROOT)
    draft_tokens, n, nxt = chain_step(target, drafter, roots, generator, deterministic, verifier)
    emitted = torch.cat([draft_tokens, torch.zeros(TRIALS, 1, dtype=torch.long)], 1)
    emitted[torch.arange(TRIALS), n] = nxt
    short = n == 0
    draft2, n2, nxt2 = chain_step(target, drafter, emitted[short, 0], generator, deterministic, verifier)
    emitted[short, 1] = torch.where(n2 > 0, draft2[:, 0], nxt2)
    return emitted[:, :2]


@pytest.mark.parametrize("deterministic", [False, True], ids=["draft_probs", "draft_probs None"])
@pytest.mark.parametrize("name", list(SAMPLINGS))
def test_first_and_joint_tokens_follow_target(name, deterministic):
    sampling = SAMPLINGS[name]
    target, drafter = markov_model(VOCAB, sampling, seed=1), markov_model(VOCAB, sampling, seed=2)
    pair = first_two_tokens(target, drafter, torch.Generator().manual_seed(3), deterministic)
    exact_first = target[ROOT]
    assert tv_distance(pair[:, 0], exact_first) < tv_bound(VOCAB, TRIALS)
    exact_joint = (exact_first.unsqueeze(1) * target).view(-1)                # P(a) P(b | a)
    assert tv_distance(pair[:, 0] * VOCAB + pair[:, 1], exact_joint) < tv_bound(VOCAB**2, TRIALS)


def accept_always(draft_tokens, draft_probs, target_probs, generator):
    k = draft_tokens.shape[1]
    return torch.full((draft_tokens.shape[0],), k), sample(target_probs[:, k], generator)


def recover_from_target(draft_tokens, draft_probs, target_probs, generator):
    """Bug: after a rejection, resample from target_probs instead of the residual."""
    n, _ = verify_chain_sampling_batched(draft_tokens, draft_probs, target_probs, generator)
    return n, sample(target_probs[torch.arange(n.shape[0]), n], generator)


@pytest.mark.parametrize("wrong", [accept_always, recover_from_target])
def test_wrong_verifier_fails_the_same_bound(wrong):
    sampling = SAMPLINGS["t=1"]
    target, drafter = markov_model(VOCAB, sampling, seed=1), markov_model(VOCAB, sampling, seed=2)
    pair = first_two_tokens(target, drafter, torch.Generator().manual_seed(3), verifier=wrong)
    first_tv = tv_distance(pair[:, 0], target[ROOT])
    assert first_tv > 3 * tv_bound(VOCAB, TRIALS)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match=r"draft_probs must have shape \[batch, k, vocab\] = \[1, 2, 4\]"):
        verify_chain_sampling_batched(T([[0, 1]]), torch.rand(1, 2, 5), TARGET.unsqueeze(0))
    with pytest.raises(ValueError, match=r"target_probs must have shape \[batch, k\+1, vocab\]"):
        verify_chain_sampling_batched(T([[0, 1]]), None, TARGET[:2].unsqueeze(0))
