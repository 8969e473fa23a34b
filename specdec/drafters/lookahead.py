"""Lookahead decoding (Fu et al. 2024): Jacobi iterations over a 2D window of guesses fill an n-gram pool, and
the pool's n-grams that start with the root are verified in the same target pass.

The window has N-1 levels. Level 0 is a chain of guesses following the root; column i hangs off level-0 token
i-1 (off the root for i = 0) and holds one guess per level 1..N-2, each the child of the one below. So the
lookahead branch is a token tree whose depths are the paper's position ids (level l, column i at root + l + i)
and whose ancestor mask is the paper's attention mask (level-0 tokens before the column, then the column's
lower levels). It goes into the draft as *scratch* nodes: scored in the pass, never verified or kept. The
target's argmax after each last-level token is a new level; every column then closes an N-gram (its anchor,
its levels, the new token), stored in a pool keyed by its first token, and the window moves up one level.
The first N-2 steps fill the levels, starting from random prompt tokens (W + N - 3 of them) as the paper does.

Verification branch: the pool's n-grams keyed by the root (their last N-1 tokens, most recent first) merged
into a trie. They are deterministic proposals (draft_probs None), so the lossless verifier keeps sampling
exact; the lookahead branch takes the argmax whatever the sampling, which only changes what gets guessed.
"""

from __future__ import annotations

import random

import torch

from specdec.drafters import register
from specdec.drafters.base import DecodeState, Forkable
from specdec.drafters.pld import trie_draft
from specdec.drafters.schedule import DraftLength
from specdec.errors import ConfigError
from specdec.types import Draft, VerifyResult


class NgramPool:
    """First token -> up to `size` distinct continuations (tuples of N-1 tokens), least recently seen first."""

    def __init__(self, size: int):
        self.size = size
        self.grams: dict[int, list[tuple[int, ...]]] = {}

    def add(self, gram: tuple[int, ...]) -> None:
        seen = self.grams.setdefault(gram[0], [])
        if gram[1:] in seen:
            seen.remove(gram[1:])
        seen.append(gram[1:])
        if len(seen) > self.size:
            del seen[0]

    def candidates(self, first: int) -> list[tuple[int, ...]]:
        """Continuations of `first`, most recent first."""
        return self.grams.get(first, [])[::-1]


class Window:
    """N-1 levels of guesses. Full: level 0 has W-1 tokens, levels 1..N-2 have W (one per column)."""

    def __init__(self, first: list[int], n_levels: int):
        self.levels, self.n_levels = [list(first)], n_levels

    @property
    def full(self) -> bool:
        return len(self.levels) == self.n_levels

    def tree(self) -> tuple[list[int], list[int]]:
        """(tokens, parents) of the lookahead branch, level by level; parents index this list, -1 = the root."""
        tokens = list(self.levels[0])
        parents = list(range(-1, len(tokens) - 1))          # level 0: a chain after the root
        below = list(range(-1, len(tokens)))                # column i's anchor: level-0 node i-1 (-1 = root)
        for level in self.levels[1:]:
            parents += below[:len(level)]
            below = list(range(len(tokens), len(tokens) + len(level)))
            tokens += level
        return tokens, parents

    def advance(self, new: list[int], root: int) -> list[tuple[int, ...]]:
        """Take the target's argmax after each last-level token; return the N-grams completed (full window)."""
        levels = self.levels
        if len(levels) == 1:                                # filling: each level grows a new one above it
            self.levels = [levels[0][1:], new]
            return []
        if not self.full:
            self.levels = [level[1:] for level in levels] + [new[1:]]
            return []
        anchors = [root] + levels[0]
        grams = [(anchors[i], *(level[i] for level in levels[1:]), tok) for i, tok in enumerate(new)]
        self.levels = [levels[1][1:]] + levels[2:] + [new]
        return grams


class LookaheadDrafter(Forkable):
    per_request = ("schedule",)
    hidden_layers: tuple[int, ...] = ()

    def __init__(self, window: int = 5, ngram: int = 4, max_verify: int = 5, adaptive: bool = False,
                 prompt_pool: bool = False, seed: int = 0):
        if window < 1 or ngram < 3 or max_verify < 1:
            raise ConfigError(f"window={window}, ngram={ngram}, max_verify={max_verify}; accepted: window >= 1, "
                              f"ngram >= 3, max_verify >= 1")
        self.w, self.n, self.g, self.prompt_pool, self.seed = window, ngram, max_verify, prompt_pool, seed
        self.schedule = DraftLength(ngram - 1, adaptive, maximum=ngram - 1)
        self.begin([0])

    def begin(self, prompt_ids: list[int]) -> None:
        rng = random.Random(self.seed)
        self.window = Window([rng.choice(prompt_ids) for _ in range(self.w + self.n - 3)], self.n - 1)
        self.pool = NgramPool(self.g)
        self._indexed = 0                    # prompt_pool: n-grams of the committed text start below this
        self._root, self._depth, self._scored = 0, 0, 0
        self.schedule.reset()

    def _index_text(self, tokens: list[int]) -> None:
        for j in range(self._indexed, len(tokens) - self.n + 1):
            self.pool.add(tuple(tokens[j:j + self.n]))
        self._indexed = max(self._indexed, len(tokens) - self.n + 1)

    def propose(self, state: DecodeState) -> Draft:
        if self.prompt_pool:
            self._index_text(state.tokens)
        self._root = state.tokens[-1]
        depth = min(self.schedule.length, state.max_depth)
        paths = [list(gram[:depth]) for gram in self.pool.candidates(self._root)] if depth > 0 else []
        draft = trie_draft(paths, max_nodes=state.max_nodes)
        self._depth = int(draft.depths().max()) if draft.size else 0
        tokens, parents = self.window.tree()
        # The lookahead branch only when it fits whole: the cache has room for max_nodes nodes, scratch included.
        self._scored = len(tokens) if draft.size + len(tokens) <= state.max_nodes else 0
        if not self._scored:
            return draft
        m = draft.size
        return Draft(tokens=torch.cat([draft.tokens, torch.tensor(tokens, dtype=torch.long)]),
                     parents=torch.cat([draft.parents, torch.tensor([p + m if p >= 0 else -1 for p in parents])]),
                     n_scratch=len(tokens))

    def on_accept(self, result: VerifyResult) -> None:
        self.schedule.update(result.n_accepted, self._depth)
        if self._scored and result.scratch_argmax is not None:
            new = result.scratch_argmax[-len(self.window.levels[-1]):].tolist()
            for gram in self.window.advance(new, self._root):
                self.pool.add(gram)


@register("lookahead", "lookahead decoding: Jacobi guesses in the same pass grow an n-gram pool (no extra model)")
def make_lookahead(target, **options) -> LookaheadDrafter:
    if not target.runtime.supports_tree:
        raise ConfigError("lookahead decoding scores a token tree each step; it needs a native target model")
    return LookaheadDrafter(**options)
