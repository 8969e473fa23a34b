"""fork(): every built-in drafter serves many requests at once. A batch of requests, each with a fork of one
drafter, returns each request's solo vanilla tokens (greedy), and forks never share per-request state."""

from __future__ import annotations

import pytest
import torch

from specdec.drafters import make_drafter
from specdec.drafters.union import UnionDrafter
from specdec.engine import SpeculativeDecoder
from tests.drafters.test_draft_model import noisy_copy
from tests.tiny import tiny_target
from tests.trained_helpers import distilled_drafter, eagle_drafter, medusa_drafter


@pytest.fixture(scope="module")
def pair():
    return tiny_target(vocab=32, layers=2, hidden=32, scale=3.0, seed=5)


def _prompts(n: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(2)
    base = torch.randint(0, 32, (12,), generator=g).tolist()
    return [base[i:] + base[:i] + base[:5] for i in range(n)]           # repetitive: lookup drafters find matches


PROTOTYPES = {
    "pld": lambda t, hf: make_drafter("pld", t, {"num_draft": 3}),
    "lookahead": lambda t, hf: make_drafter("lookahead", t, {}),
    "layerskip": lambda t, hf: make_drafter("layerskip", t, {"skip": "1", "force": True, "threshold": 0.0}),
    "draft": lambda t, hf: __import__("specdec.drafters.draft_model", fromlist=["x"]).DraftModelDrafter(
        noisy_copy(hf, 0.3), num_draft=3),
    "eagle": lambda t, hf: eagle_drafter(t, depth=3, topk=2, nodes=6),
    "medusa": lambda t, hf: medusa_drafter(t),
    "distilled": lambda t, hf: distilled_drafter(t, num_draft=3),
    "eagle+pld": lambda t, hf: UnionDrafter([("eagle", eagle_drafter(t, depth=3, topk=2, nodes=6)),
                                             ("pld", make_drafter("pld", t, {}))]),
}


@pytest.mark.parametrize("method", list(PROTOTYPES))
def test_forks_of_one_drafter_decode_a_batch_as_each_request_alone(pair, method):
    target, hf = pair
    prototype = PROTOTYPES[method](target, hf)
    prompts = _prompts(5)
    alone = [SpeculativeDecoder(target).generate(p, 20).token_ids for p in prompts]
    many = SpeculativeDecoder(target, prototype).generate_many(prompts, 20, max_num_seqs=3)
    assert [r.token_ids for r in many] == alone
    assert sum(r.stats.draft_tokens for r in many) > 0


def test_forks_keep_their_own_adaptive_state(pair):
    target, _ = pair
    prototype = make_drafter("pld", target, {"num_draft": 4})
    a, b = prototype.fork(), prototype.fork()
    assert a.schedule is not b.schedule and a.acceptance is not prototype.acceptance
    a.begin([1, 2, 3, 1, 2])
    b.begin([7, 8, 9])
    assert a.index is not b.index and a.index.tokens != b.index.tokens
    union = UnionDrafter([("pld", make_drafter("pld", target, {})), ("lookahead", make_drafter("lookahead", target, {}))])
    forked = union.fork()
    assert all(m is not n for (_, m), (_, n) in zip(forked.members, union.members))
