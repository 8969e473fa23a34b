"""Prompt lookup decoding (n-gram drafting, Saxena 2023): copy what followed the context's latest suffix.

An index maps every n-gram (n = 1..max_ngram) of prompt + generated text to the positions right after it;
it grows by the newly committed tokens only, so a step costs O(new tokens * max_ngram), never a rescan.
To propose, the longest suffix of the context (n from max_ngram down to min_ngram) that occurred before
picks the continuations; with branches > 1 several distinct continuations form a tree (a trie of them).
The proposals are deterministic (draft_probs None), so sampling stays exact under the verifier. Each node's
confidence is how often this request's drafts were accepted as deep as it (types.AcceptanceCounter, the
counter the engine's statistics keep too).
"""

from __future__ import annotations

from collections import defaultdict

import torch

from specdec.drafters import register
from specdec.drafters.base import DecodeState, Forkable
from specdec.drafters.cost import CostCurve, fit_costs, worth_verifying
from specdec.drafters.schedule import DraftLength
from specdec.errors import ConfigError
from specdec.types import AcceptanceCounter, Draft, VerifyResult


class NgramIndex:
    """n-gram -> positions that follow its occurrences (most recent last), kept up to date incrementally."""

    def __init__(self, max_ngram: int, min_ngram: int = 1, keep: int = 8):
        self.max_ngram, self.min_ngram, self.keep = max_ngram, min_ngram, keep
        self.tokens: list[int] = []
        self.follows: dict[tuple[int, ...], list[int]] = defaultdict(list)

    def extend(self, tokens: list[int]) -> None:
        """Append tokens; index each n-gram that now has a following token."""
        for tok in tokens:
            j = len(self.tokens)           # position of tok: every n-gram ending just before j is followed by it
            for n in range(self.min_ngram, self.max_ngram + 1):
                if j - n < 0:
                    break
                positions = self.follows[tuple(self.tokens[j - n:j])]
                positions.append(j)
                if len(positions) > self.keep:
                    del positions[0]
            self.tokens.append(tok)

    def lookup(self, max_matches: int) -> tuple[int, list[int]]:
        """(n, continuation start positions, most recent first) for the longest suffix seen before."""
        for n in range(min(self.max_ngram, len(self.tokens)), self.min_ngram - 1, -1):
            positions = self.follows.get(tuple(self.tokens[-n:]))
            if positions:
                return n, positions[::-1][:max_matches]
        return 0, []


class PromptLookupDrafter(Forkable):
    per_request = ("schedule", "acceptance")
    hidden_layers: tuple[int, ...] = ()

    # Defaults from a sweep on this CPU (docs/drafters.md): matches shorter than 3 tokens were right too rarely to
    # pay for verifying their drafts when verifying 8 tokens costs ~2x one token.
    def __init__(self, max_ngram: int = 4, min_ngram: int = 3, num_draft: int = 8, branches: int = 1,
                 adaptive: bool = True, max_draft: int = 16, costs: CostCurve | None = None):
        if not 1 <= min_ngram <= max_ngram:
            raise ConfigError(f"min_ngram={min_ngram}, max_ngram={max_ngram}; accepted: 1 <= min_ngram <= max_ngram")
        if branches < 1:
            raise ConfigError(f"branches={branches} is invalid; accepted: an integer >= 1")
        self.max_ngram, self.min_ngram, self.branches = max_ngram, min_ngram, branches
        self.schedule = DraftLength(num_draft, adaptive, maximum=max(max_draft, num_draft))
        self.index = NgramIndex(max_ngram, min_ngram)
        self.acceptance = AcceptanceCounter()
        self.costs = costs                 # fit: cut drafts to what the cost curve pays for (None: keep all)
        self._draft = Draft.chain(torch.zeros(0, dtype=torch.long))

    def begin(self, prompt_ids: list[int]) -> None:
        self.index = NgramIndex(self.max_ngram, self.min_ngram)
        self.index.extend(list(prompt_ids))
        self.schedule.reset()
        self.acceptance.reset()

    def propose(self, state: DecodeState) -> Draft:
        self.index.extend(state.tokens[len(self.index.tokens):])
        depth = min(self.schedule.length, state.max_depth)
        _, starts = self.index.lookup(self.branches)
        ctx = self.index.tokens
        paths = [ctx[s:s + depth] for s in starts]
        draft = trie_draft([p for p in paths if p], max_nodes=state.max_nodes)
        by_depth = torch.tensor([0.0, *self.acceptance.confidence(draft.max_depth)])
        draft.confidence = by_depth[draft.depths()]               # this request's acceptance at each depth
        if self.costs is not None and draft.size:
            draft = draft.select(worth_verifying(draft.confidence.tolist(), self.costs))
        self._draft = draft
        return draft

    def on_accept(self, result: VerifyResult) -> None:
        self.schedule.update(result.n_accepted, self._draft.max_depth)
        self.acceptance.update(self._draft, result)


def trie_draft(paths: list[list[int]], max_nodes: int) -> Draft:
    """Merge token paths (best first) into a draft tree sharing common prefixes, at most max_nodes nodes."""
    tokens: list[int] = []
    parents: list[int] = []
    children: dict[tuple[int, int], int] = {}     # (parent node, token) -> node
    for path in paths:
        node = -1
        for tok in path:
            nxt = children.get((node, tok))
            if nxt is None:
                if len(tokens) >= max_nodes:
                    break
                nxt = len(tokens)
                tokens.append(tok)
                parents.append(node)
                children[(node, tok)] = nxt
            node = nxt
    return Draft(tokens=torch.tensor(tokens, dtype=torch.long), parents=torch.tensor(parents, dtype=torch.long))


@register("pld", "prompt lookup: n-gram matches in prompt + output propose their continuation (no extra model)")
def make_pld(target, fit: bool = False, **options) -> PromptLookupDrafter:
    return PromptLookupDrafter(costs=fit_costs(target, fit), **options)
