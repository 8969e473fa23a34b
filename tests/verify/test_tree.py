"""Tree speculative sampling: table cases, single vs batched vs reference, exact enumeration, statistics."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specdec.config import SamplingParams
from specdec.types import Draft
from specdec.verify import verify_tree_sampling, verify_tree_sampling_batched
from specdec.verify import tree as tree_module
from specdec.verify.reference import exact_first_token_distribution, ref_tree_sampling
from specdec.verify.tree import verify_tree_sampling_batched_from_uniforms, verify_tree_sampling_from_uniforms

from .helpers import draw_without_replacement, is_root_path, markov_model, random_trees, tv_bound, tv_distance

T = torch.tensor
# root -> {0: token 0, 1: token 1}; node 0 -> {2: token 2}. Target rows [4, vocab 4], draft rows [3, 4].
TOKENS, PARENTS = [0, 1, 2], [-1, -1, 0]
TARGET = T([[0.2, 0.6, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 1.0]])
DRAFT = T([[0.5, 0.3, 0.2, 0.0], [0.5, 0.3, 0.2, 0.0], [0.0, 0.0, 1.0, 0.0]])

CASES = [  # (name, draft_probs, uniforms [n+1], accepted_path, next_token, bonus)
    # node 0: ratio .2/.5 = .4. node 2: ratio .7/1 = .7.
    ("first branch to the leaf, bonus", DRAFT, [0.3, 0.0, 0.5, 0.0], [0, 2], 3, True),
    ("first branch, child rejected", DRAFT, [0.3, 0.0, 0.8, 0.5], [0], 1, False),  # residual [.1,.1,0,.1]
    # node 0 rejected: residual norm(max(0, [.2,.6,.1,.1] - [.5,.3,.2,0])) = [0, .75, 0, .25]; node 1 is
    # then proposed from [.5,.3,.2,0] without token 0 = [0, .6, .4, 0]: ratio .75 / .6 >= 1, always accepted.
    ("second sibling accepted after rejection", DRAFT, [0.5, 0.999, 0.0, 0.0], [1], 0, True),
    # draft_probs None: node 0 accepted w.p. .2; if rejected residual [0, .75, .125, .125] -> node 1 w.p. .75.
    ("one-hot proposals: second sibling", None, [0.3, 0.7, 0.0, 0.0], [1], 0, True),
    ("one-hot proposals: all rejected", None, [0.3, 0.8, 0.0, 0.99], [], 3, False),  # residual [0,0,.5,.5]
]


@pytest.mark.parametrize("name, draft_probs, uniforms, path, next_token, bonus", CASES, ids=[c[0] for c in CASES])
def test_tree_table(name, draft_probs, uniforms, path, next_token, bonus):
    draft = Draft(tokens=T(TOKENS), parents=T(PARENTS), draft_probs=draft_probs)
    result = verify_tree_sampling_from_uniforms(draft, TARGET, T(uniforms))
    assert (result.accepted_path, result.next_token, result.bonus) == (path, next_token, bonus)
    assert result.tokens == [TOKENS[i] for i in path] + [next_token]
    ref_probs = None if draft_probs is None else draft_probs.tolist()
    assert ref_tree_sampling(TOKENS, PARENTS, ref_probs, TARGET.tolist(), uniforms) == (path, next_token, bonus)
    batched = None if draft_probs is None else draft_probs.unsqueeze(0)
    last, nxt = verify_tree_sampling_batched_from_uniforms(T([TOKENS]), T(PARENTS), batched, TARGET.unsqueeze(0),
                                                           T([uniforms]))
    assert (int(last[0]), int(nxt[0])) == ((path or [-1])[-1], next_token)


@settings(max_examples=200, deadline=None)
@given(random_trees(max_nodes=6, vocab=4), st.integers(0, 2**31 - 1))
def test_single_batched_reference_agree(case, seed):
    tokens, parents, target_logits, draft_probs = case
    target_probs = torch.softmax(target_logits, -1)
    uniforms = torch.rand(tokens.shape[0] + 1, generator=torch.Generator().manual_seed(seed))
    result = verify_tree_sampling_from_uniforms(Draft(tokens, parents, draft_probs), target_probs, uniforms)
    ref_probs = None if draft_probs is None else draft_probs.tolist()
    assert (result.accepted_path, result.next_token, result.bonus) == ref_tree_sampling(
        tokens.tolist(), parents.tolist(), ref_probs, target_probs.tolist(), uniforms.tolist())
    batched = None if draft_probs is None else draft_probs.unsqueeze(0)
    last, nxt = verify_tree_sampling_batched_from_uniforms(tokens.unsqueeze(0), parents, batched,
                                                           target_probs.unsqueeze(0), uniforms.unsqueeze(0))
    assert (int(last[0]), int(nxt[0])) == ((result.accepted_path or [-1])[-1], result.next_token)
    # properties: a root-to-node path, 1..depth+1 tokens, bonus iff the path ends at a node without children
    depth = int(Draft(tokens, parents).depths().max()) if tokens.numel() else 0
    assert 1 <= len(result.tokens) == result.n_accepted + 1 <= depth + 1
    assert is_root_path(result.accepted_path, parents.tolist())
    assert result.bonus == ((result.accepted_path or [-1])[-1] not in parents.tolist())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.booleans(), st.integers(0, 2**31 - 1))
def test_exact_enumeration_equals_target(n_children, with_probs, seed):
    """Enumerating every draw order and accept/reject outcome gives exactly target_probs[0]."""
    g = torch.Generator().manual_seed(seed)
    vocab = 5
    target = torch.softmax(2 * torch.randn(vocab, generator=g, dtype=torch.float64), -1).tolist()
    draft = torch.softmax(2 * torch.randn(vocab, generator=g, dtype=torch.float64), -1).tolist()
    tokens = torch.randperm(vocab, generator=g)[:n_children].tolist()
    exact = exact_first_token_distribution(target, n_children, draft if with_probs else None, tokens)
    assert max(abs(a - b) for a, b in zip(exact, target)) < 1e-12


# ---- statistical tests --------------------------------------------------------------------------------
# Markov-chain target / drafter as in test_sampling. Tree: the root has 3 children, node 0 has 2, node 1 has
# 1, node 3 has 1; siblings are drawn without replacement from the drafter (or are its top-m tokens).
VOCAB, TRIALS, ROOT = 6, 200_000, 0
PARENTS_STAT = [-1, -1, -1, 0, 0, 1, 3]
SAMPLINGS = {
    "t=1": SamplingParams(temperature=1.0),
    "t=0.7,top_k=4": SamplingParams(temperature=0.7, top_k=4),
    "t=1.3,top_p=0.95": SamplingParams(temperature=1.3, top_p=0.95),
}


def draft_tree(drafter, roots, generator, deterministic):
    """tokens [N, n], draft_probs [N, n, vocab] for the PARENTS_STAT topology."""
    n = len(PARENTS_STAT)
    tokens = torch.zeros(len(roots), n, dtype=torch.long)
    draft_probs = torch.zeros(len(roots), n, VOCAB)
    for parent in sorted(set(PARENTS_STAT)):                     # parents are drafted before their children
        group = [i for i, p in enumerate(PARENTS_STAT) if p == parent]
        rows = drafter[roots if parent < 0 else tokens[:, parent]]
        if deterministic:
            tokens[:, group] = rows.argsort(dim=-1, descending=True, stable=True)[:, :len(group)]
        else:
            tokens[:, group] = draw_without_replacement(rows, len(group), generator)
        draft_probs[:, group] = rows.unsqueeze(1)
    return tokens, (None if deterministic else draft_probs)


def tree_step(target, drafter, roots, generator, deterministic):
    """One batched tree verification per root: (tokens [N, n], last_node [N], next_tokens [N])."""
    tokens, draft_probs = draft_tree(drafter, roots, generator, deterministic)
    target_probs = target[torch.cat([roots.view(-1, 1), tokens], 1)]
    last, nxt = verify_tree_sampling_batched(tokens, T(PARENTS_STAT), draft_probs, target_probs, generator)
    return tokens, last, nxt


def path_nodes(last):
    """(first [N], second [N]) accepted node on the root path to ``last`` (-1 where the path is shorter)."""
    paths = []
    for node in range(len(PARENTS_STAT)):
        path = [node]
        while PARENTS_STAT[path[0]] >= 0:
            path.insert(0, PARENTS_STAT[path[0]])
        paths.append((path + [-1, -1])[:2])
    table = T([[-1, -1]] + paths)                                # row node + 1
    return table[last + 1, 0], table[last + 1, 1]


def first_two_tokens(target, drafter, generator, deterministic=False):
    roots = torch.full((TRIALS,), ROOT)
    tokens, last, nxt = tree_step(target, drafter, roots, generator, deterministic)
    first, second = path_nodes(last)
    pick = lambda node, fallback: torch.where(node >= 0, tokens.gather(1, node.clamp(min=0).view(-1, 1))[:, 0],
                                              fallback)
    emitted_first = pick(first, nxt)
    emitted_second = pick(second, nxt)
    short = last < 0                                             # one token emitted: verify a second tree
    tokens2, last2, nxt2 = tree_step(target, drafter, emitted_first[short], generator, deterministic)
    first2, _ = path_nodes(last2)
    emitted_second[short] = torch.where(first2 >= 0, tokens2.gather(1, first2.clamp(min=0).view(-1, 1))[:, 0], nxt2)
    return emitted_first, emitted_second


@pytest.mark.parametrize("deterministic", [False, True], ids=["draft_probs", "draft_probs None"])
@pytest.mark.parametrize("name", list(SAMPLINGS))
def test_first_and_joint_tokens_follow_target(name, deterministic):
    sampling = SAMPLINGS[name]
    target, drafter = markov_model(VOCAB, sampling, seed=4), markov_model(VOCAB, sampling, seed=5)
    assert int((drafter > 0).sum(-1).min()) >= 3                 # 3 distinct siblings can be drawn
    first, second = first_two_tokens(target, drafter, torch.Generator().manual_seed(6), deterministic)
    assert tv_distance(first, target[ROOT]) < tv_bound(VOCAB, TRIALS)
    exact_joint = (target[ROOT].unsqueeze(1) * target).view(-1)
    assert tv_distance(first * VOCAB + second, exact_joint) < tv_bound(VOCAB**2, TRIALS)


def test_with_replacement_residual_fails_the_same_bound(monkeypatch):
    """Bug: verify siblings drawn without replacement as if they were drawn with replacement."""
    real = tree_module.sibling_proposals
    distinct_parents = lambda tokens, parents, *rest: real(tokens, torch.arange(parents.shape[0]), *rest)
    monkeypatch.setattr(tree_module, "sibling_proposals", distinct_parents)   # no sibling is ever masked
    target, drafter = markov_model(VOCAB, SAMPLINGS["t=1"], seed=4), markov_model(VOCAB, SAMPLINGS["t=1"], seed=5)
    first, _ = first_two_tokens(target, drafter, torch.Generator().manual_seed(6))
    assert tv_distance(first, target[ROOT]) > 3 * tv_bound(VOCAB, TRIALS)


def test_single_draft_function_follows_target():
    """The per-draft function itself, in a loop (fewer trials, so a looser but still derived bound)."""
    trials = 10_000
    target, drafter = markov_model(VOCAB, SAMPLINGS["t=1"], seed=4), markov_model(VOCAB, SAMPLINGS["t=1"], seed=5)
    g = torch.Generator().manual_seed(7)
    tokens, draft_probs = draft_tree(drafter, torch.full((trials,), ROOT), g, deterministic=False)
    target_probs = target[torch.cat([torch.full((trials, 1), ROOT), tokens], 1)]
    parents = T(PARENTS_STAT)
    first = T([verify_tree_sampling(Draft(tokens[i], parents, draft_probs[i]), target_probs[i], g).tokens[0]
               for i in range(trials)])
    assert tv_distance(first, target[ROOT]) < tv_bound(VOCAB, trials)


def test_shape_mismatch_raises():
    draft = Draft(tokens=T(TOKENS), parents=T(PARENTS), draft_probs=torch.rand(3, 5))
    with pytest.raises(ValueError, match=r"draft.draft_probs must have shape \[n, vocab\] = \[3, 4\]"):
        verify_tree_sampling(draft, TARGET)
    with pytest.raises(ValueError, match="target_probs must have shape"):
        verify_tree_sampling(Draft(tokens=T(TOKENS), parents=T(PARENTS)), TARGET[:3])
    with pytest.raises(ValueError, match=r"parents must have shape \[n\] = \[3\]"):
        verify_tree_sampling_batched(T([TOKENS]), T([-1, 0]), None, TARGET.unsqueeze(0))
