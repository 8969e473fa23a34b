"""Replaying recorded greedy answers: what a deterministic drafter, or the best possible prompt lookup, would do.

Greedy verification is deterministic: given the target's greedy answer, the accepted length of a draft at
every step is known without running the target (a node is kept when its parent was and its token is the
answer's next token). So a `specdec bench` run's vanilla answers replay any deterministic drafter exactly
(`replay`: for `pld` it takes the run's target passes, step for step; only a draft accepted past the
end-of-sequence token counts differently), and they bound a whole family: `lookup_oracle` drafts, at each step,
the longest correct continuation found after any earlier occurrence of the context's last n tokens, exactly as
long as it will be accepted. A prompt-lookup drafter matching at least n tokens can accept no more at that step,
and over an answer it needs no fewer target passes (the best jump shrinks by at most one token per position,
so always taking it is optimal; tested), while no oracle pass verifies a token that is then thrown away.
Steps are priced by a verification cost curve (`specdec cost-curve`): time = sum of cost(nodes + 1), drafting
taken as free, so speedup = tokens * cost(1) / time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from specdec.config import SamplingParams
from specdec.drafters.base import DecodeState, Proposer
from specdec.drafters.cost import CostCurve
from specdec.types import Draft, VerifyResult


@dataclass
class Replay:
    tokens: int = 0         # tokens the steps produced (accepted + one from the target each)
    steps: int = 0          # target forward passes
    cost: float = 0.0       # sum of cost(draft nodes + 1), in units of the curve

    def add(self, other: Replay) -> Replay:
        return Replay(self.tokens + other.tokens, self.steps + other.steps, self.cost + other.cost)

    @property
    def mean_accepted_length(self) -> float:
        return self.tokens / self.steps if self.steps else 0.0

    def speedup(self, curve: CostCurve) -> float:
        """Against plain decoding, one cost(1) pass per token."""
        return self.tokens * curve(1) / self.cost if self.cost else 0.0


def accepted_path(draft: Draft, truth: list[int]) -> list[int]:
    """Node indices greedy verification keeps when the target's answer continues with `truth`."""
    tokens, parents = draft.tokens.tolist(), draft.parents.tolist()
    path, node = [], -1
    for want in truth:
        node = next((i for i, (t, p) in enumerate(zip(tokens, parents)) if p == node and t == want), None)
        if node is None:
            break
        path.append(node)
    return path


def replay(make: Callable[[], Proposer], prompt: list[int], answer: list[int], curve: CostCurve,
           max_new_tokens: int | None = None) -> Replay:
    """Run a fresh deterministic drafter over `answer` (the target's greedy continuation of `prompt`, ending
    with the end-of-sequence token if it stopped there) as the engine would, without the target."""
    drafter, out = make(), Replay()
    drafter.begin(list(prompt))
    limit = max_new_tokens or len(answer)
    tokens, i = list(prompt), 0
    while i < len(answer):            # the engine's bounds: depth to the token limit, nodes to the cache's room
        state = DecodeState(tokens, SamplingParams(), None, max_depth=limit - i - 1, max_nodes=limit - i + 1)
        draft = drafter.propose(state)
        path = accepted_path(draft, answer[i:-1]) if draft.size else []     # the last token is the target's own
        step = answer[i:i + len(path) + 1]
        drafter.on_accept(VerifyResult(step, len(path), path, step[-1], bonus=False))
        tokens += step
        i += len(step)
        out = out.add(Replay(len(step), 1, curve(draft.size + 1)))
    return out


def lookup_oracle(prompt: list[int], answer: list[int], curve: CostCurve, min_ngram: int = 1,
                  max_draft: int = 16) -> Replay:
    """The best prompt lookup with matches of at least `min_ngram` tokens: each step drafts the longest correct
    continuation (at most max_draft) that follows an earlier occurrence of the context's last min_ngram tokens."""
    context, out, i = list(prompt), Replay(), 0
    while i < len(answer):
        want = answer[i:min(len(answer) - 1, i + max_draft)]       # the last answer token is the target's own
        suffix = context[-min_ngram:]
        best = 0
        for j in range(min_ngram, len(context)):
            if context[j - min_ngram:j] != suffix:
                continue
            n = 0
            while n < len(want) and j + n < len(context) and context[j + n] == want[n]:
                n += 1
            best = max(best, n)
        step = answer[i:i + best + 1]
        context += step
        i += len(step)
        out = out.add(Replay(len(step), 1, curve(best + 1)))
    return out
