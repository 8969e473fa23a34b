"""One tiny chat model for the server tests, drafters to serve it with, and the reference outputs they must match."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from specdec.config import SamplingParams
from specdec.drafters.base import NoDraft
from specdec.drafters.draft_model import DraftModelDrafter
from specdec.engine import SpeculativeDecoder
from tests.drafters.test_draft_model import noisy_copy
from tests.server.helpers import tiny_chat_model


class SlowDraft(NoDraft):
    """Vanilla decoding that takes 10 ms a step: keeps a request running long enough to disconnect from."""

    def propose(self, state):
        time.sleep(0.01)
        return super().propose(state)


class Boom(NoDraft):
    """A drafter that fails inside the engine's step (an internal error)."""

    def propose(self, state):
        raise RuntimeError("boom")


@pytest.fixture(scope="session")
def model():
    return tiny_chat_model()


@pytest.fixture(scope="session")
def target(model):
    return model[0]


@pytest.fixture(scope="session")
def endless(target):
    """The target without an end-of-sequence token: a request runs until its max_tokens."""
    return replace(target, eos_token_ids=set())


@pytest.fixture(scope="session")
def noisy(model):
    """A draft model that is the target plus noise: some drafts accepted, some rejected."""
    return DraftModelDrafter(noisy_copy(model[1], 0.5, seed=1), num_draft=4, adaptive=False)


@pytest.fixture(scope="session")
def solo(target):
    """solo(prompt, max_tokens, chat=True, sampling=None) -> (text, token ids) of that request decoded alone."""
    cache = {}

    def run(prompt, max_tokens, chat=True, sampling=None):
        key = (repr(prompt), max_tokens, chat, sampling)
        if key not in cache:
            ids = target.encode(prompt, chat=chat)
            res = SpeculativeDecoder(target).generate(ids, max_tokens, sampling or SamplingParams())
            cache[key] = (target.decode(res.token_ids), res.token_ids)
        return cache[key]
    return run
