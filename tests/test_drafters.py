"""Drafters that exist only for tests: they exercise the engine before (and beside) the real methods.

`TargetGreedyDrafter` proposes the target's own greedy continuation (every token is accepted under greedy);
`NoiseDrafter` proposes random chains or trees, with draft_probs (siblings drawn without replacement from a
random distribution) or deterministically (draft_probs None). Usable from the CLI as
``--method tests.test_drafters:target_greedy`` from a checkout.
"""

from __future__ import annotations

import torch

from specdec.drafters.base import DecodeState
from specdec.types import Draft, VerifyResult


class TargetGreedyDrafter:
    hidden_layers: tuple[int, ...] = ()

    def __init__(self, target, k: int = 4):
        self.rt, self.k = target.runtime, k

    def begin(self, prompt_ids: list[int]) -> None:
        pass

    def propose(self, state: DecodeState) -> Draft:
        k = min(self.k, state.max_depth, state.max_nodes)
        cache = self.rt.new_cache(len(state.tokens) + k + 1)
        logits = self.rt.forward(torch.tensor([state.tokens]), cache, logits="last").logits
        out = []
        for _ in range(k):
            out.append(int(logits[0, -1].argmax()))
            logits = self.rt.forward(torch.tensor([[out[-1]]]), cache).logits
        return Draft.chain(torch.tensor(out, dtype=torch.long))

    def on_accept(self, result: VerifyResult) -> None:
        pass


class NoiseDrafter:
    """Random drafts: `depth` levels, `branches` children per node at the first level (then chains)."""

    hidden_layers: tuple[int, ...] = ()

    def __init__(self, vocab: int, depth: int = 3, branches: int = 1, with_probs: bool = True, seed: int = 0,
                 peak: float = 2.0):
        self.vocab, self.depth, self.branches, self.with_probs, self.peak = vocab, depth, branches, with_probs, peak
        self.gen = torch.Generator().manual_seed(seed)

    def begin(self, prompt_ids: list[int]) -> None:
        pass

    def _dist(self) -> torch.Tensor:
        return torch.softmax(self.peak * torch.randn(self.vocab, generator=self.gen), -1)

    def propose(self, state: DecodeState) -> Draft:
        depth = min(self.depth, state.max_depth)
        tokens, parents, probs = [], [], []
        frontier = [-1]
        for level in range(depth):
            nxt = []
            for parent in frontier:
                if len(tokens) >= state.max_nodes:
                    break
                dist = self._dist()
                count = min(self.branches if level == 0 else 1, state.max_nodes - len(tokens))
                if self.with_probs:
                    picks = torch.multinomial(dist, count, replacement=False, generator=self.gen).tolist()
                else:
                    picks = torch.randperm(self.vocab, generator=self.gen)[:count].tolist()
                for tok in picks:
                    tokens.append(tok)
                    parents.append(parent)
                    probs.append(dist)
                    nxt.append(len(tokens) - 1)
            frontier = nxt
        draft_probs = torch.stack(probs) if (self.with_probs and probs) else None
        return Draft(torch.tensor(tokens, dtype=torch.long), torch.tensor(parents, dtype=torch.long), draft_probs)

    def on_accept(self, result: VerifyResult) -> None:
        pass


def target_greedy(target, k: int = 4) -> TargetGreedyDrafter:
    return TargetGreedyDrafter(target, k)


def noise(target, **options) -> NoiseDrafter:
    return NoiseDrafter(target.runtime.vocab_size, **options)


class _HalfDrafter:
    """Has begin only: not a Proposer."""

    def begin(self, prompt_ids: list[int]) -> None:
        pass


def half(target) -> _HalfDrafter:
    return _HalfDrafter()


def not_callable(target) -> TargetGreedyDrafter:
    drafter = TargetGreedyDrafter(target)
    drafter.propose = "not a method"
    return drafter


def test_a_plugin_factory_must_return_a_proposer():
    import pytest

    from specdec.drafters import make_drafter
    from specdec.errors import ConfigError
    from tests.tiny import tiny_target
    target, _ = tiny_target(vocab=12, layers=1, hidden=16, heads=2, kv_heads=1)
    with pytest.raises(ConfigError) as e:
        make_drafter("tests.test_drafters:half", target)
    assert str(e.value) == ("drafter from 'tests.test_drafters:half' lacks hidden_layers, propose, on_accept; "
                            "accepted: an object with hidden_layers, begin(prompt_ids), propose(state), "
                            "on_accept(result)")
    with pytest.raises(ConfigError, match="lacks propose;"):
        make_drafter("tests.test_drafters:not_callable", target)
    with pytest.raises(ConfigError, match="drafter from 'tests.test_drafters:half' lacks"):
        make_drafter("pld+tests.test_drafters:half", target)              # a union's members are checked too
    assert isinstance(make_drafter("tests.test_drafters:target_greedy", target), TargetGreedyDrafter)
