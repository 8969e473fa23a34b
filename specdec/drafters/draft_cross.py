"""A draft model with a different tokenizer than the target's (universal assisted decoding; Timor et al. 2025).

The draft reads the committed text, not the target's tokens: the target's committed tokens are joined as bytes
(special tokens as their text, so a ChatML prompt reaches a ChatML draft as its own special tokens) and encoded
by the draft's tokenizer. Each step re-encodes only the bytes from two draft tokens before the end of what the
draft already holds, so its cache keeps everything before that. The draft then continues the text with its own
tokens; their bytes, which start exactly at the end of the committed text, are encoded by the target's tokenizer,
and the last word is dropped (the draft may have stopped inside it, and the target would tokenize the whole word
differently). Those target tokens are the draft.

Where the two vocabularies share most tokens (`translate=map`, chosen by `auto` when at least `map_threshold` of
both map), a token whose bytes exist in the other vocabulary is carried over by a table instead (e.g. one
vocabulary a permutation of the other); a span with a token the table lacks is re-encoded. Bytes that cannot be
encoded (no token for a byte) give an empty draft for that step. The stats count the steps of each path
(`drafter.translate_map`, `translate_retokenize`, `translate_empty`).

The draft's tokens are a function of its own sample, drawn before verification: the verifier treats the
translated draft as deterministic (draft_probs None), which keeps sampling exact. Chains only.
"""

from __future__ import annotations

import time

import torch

from specdec.drafters.draft_model import DraftModelDrafter
from specdec.drafters.translate import TokenMap, Untranslatable, Vocabulary
from specdec.errors import ConfigError
from specdec.types import Draft
from specdec.verify import logits_to_probs

PATHS = ("map", "retokenize")
BACK_OFF = 2            # draft tokens re-encoded each step: the end of the text may merge with what follows
EXTRA = 4               # draft tokens a step may draft past its budget to close the word it stopped in


def _empty() -> Draft:
    return Draft.chain(torch.zeros(0, dtype=torch.long))


class CrossTokenizerDrafter(DraftModelDrafter):
    def __init__(self, draft, target_vocab: Vocabulary, draft_vocab: Vocabulary, *, translate: str = "auto",
                 map_threshold: float = 0.99, num_draft: int = 4, adaptive: bool = True, max_draft: int = 12):
        if translate not in ("auto", *PATHS):
            raise ConfigError(f"translate={translate!r}; accepted: auto, map, retokenize")
        if not 0.0 <= map_threshold <= 1.0:
            raise ConfigError(f"map_threshold={map_threshold}; accepted: a fraction in [0, 1]")
        super().__init__(draft, num_draft=num_draft, adaptive=adaptive, max_draft=max_draft,
                         target_vocab=draft.runtime.vocab_size)
        self.tv, self.dv = target_vocab, draft_vocab
        self.to_draft, self.to_target = TokenMap(target_vocab, draft_vocab), TokenMap(draft_vocab, target_vocab)
        self.coverage = min(self.to_draft.coverage, self.to_target.coverage)
        self.path = translate if translate != "auto" else ("map" if self.coverage >= map_threshold else "retokenize")
        n = draft.runtime.vocab_size
        self.banned = torch.tensor([i >= len(draft_vocab) or draft_vocab.bytes[i] is None for i in range(n)])

    def begin(self, prompt_ids: list[int]) -> None:
        super().begin(prompt_ids)
        self.seen, self.text = 0, bytearray()       # target tokens joined so far, and their bytes
        self.context, self.ends = [], []            # draft tokens spelling a prefix of text; each one's byte end
        self.broken = False                         # a committed target token without bytes: no more drafts
        self.counters = {"translate_map": 0, "translate_retokenize": 0, "translate_empty": 0}

    # --- the committed text in draft tokens -------------------------------------------------------------------
    def _append(self, ids: list[int]) -> None:
        end = self.ends[-1] if self.ends else 0
        for i in ids:
            end += len(self.dv.bytes[i])
            self.context.append(i)
            self.ends.append(end)

    def _sync(self, tokens: list[int]) -> None:
        new = tokens[self.seen:]
        try:
            added = self.tv.join(new)
        except Untranslatable:
            self.broken = True
            raise
        complete = (self.ends[-1] if self.ends else 0) == len(self.text)    # the context spells all text so far
        self.text += added
        self.seen = len(tokens)
        mapped = self.to_draft(new) if self.path == "map" and complete else None
        if mapped is not None:
            self._append(mapped)
            return
        keep = max(0, len(self.context) - BACK_OFF)
        start = self.ends[keep - 1] if keep else 0
        tail = self.dv.encode(bytes(self.text[start:]))     # raises Untranslatable: the context stays a prefix
        del self.context[keep:], self.ends[keep:]
        self._append(tail)

    # --- drafting ----------------------------------------------------------------------------------------------
    def propose(self, state) -> Draft:
        depth = min(self.schedule.length, state.max_depth, state.max_nodes)
        self._depth = 0
        if depth <= 0:
            return _empty()
        try:
            if self.broken:
                raise Untranslatable("an earlier token had no bytes")
            self._sync(state.tokens)
        except Untranslatable:
            self.counters["translate_empty"] += 1
            return _empty()
        need = len(self.context) + depth + EXTRA + 2
        if self.cache is not None and need > self.cache.capacity:
            self.cache, self.cached = None, []                  # outgrew the draft cache: start a larger one
        room = 4 * (state.room + 1) + depth + 8                 # draft tokens the rest of the request may take
        if min(self.rt.max_context, len(self.context) + room) < need:
            self.counters["translate_empty"] += 1               # the draft model's context is full
            return _empty()
        logits = self._catch_up(self.context, room=room)
        tokens, path = self._continue(logits, depth, state)
        self.cache.crop(len(self.cached))
        if not tokens:
            self.counters["translate_empty"] += 1
            return _empty()
        self.counters[f"translate_{path}"] += 1
        self._depth = len(tokens)
        return Draft.chain(torch.tensor(tokens, dtype=torch.long))

    def _continue(self, logits, depth: int, state) -> tuple[list[int], str]:
        """Up to `depth` target tokens: the draft continues the text until its translation holds `depth` tokens
        (the last word, still open, does not count), its own special token, or EXTRA draft tokens past `depth`."""
        drafted, tokens, path = [], [], "retokenize"
        for i in range(depth + EXTRA):
            logits = logits.masked_fill(self.banned, float("-inf"))
            p = logits_to_probs(logits, state.sampling)
            tok = int(p.argmax()) if state.sampling.greedy else state.sample(p, depth=i + 1)
            drafted.append(tok)
            special = tok in self.dv.special_ids
            if i + 1 >= depth or special:
                tokens, path = self._to_target(drafted)
                if len(tokens) >= depth or special:
                    break
            if i + 1 < depth + EXTRA:
                res = self.rt.forward(torch.tensor([[tok]], device=self.rt.device), self.cache, logits="last")
                logits = self._logits(res.logits[0, -1])
        return tokens[:depth], path

    def _to_target(self, drafted: list[int]) -> tuple[list[int], str]:
        if self.path == "map":
            mapped = self.to_target(drafted)
            if mapped is not None:
                return mapped, "map"
        data = self.dv.join(drafted)
        cut = len(data) if drafted[-1] in self.dv.special_ids else self.tv.last_word_start(data)
        try:
            return (self.tv.encode(data[:cut]) if cut else self.tv.encode(data)[:-1]), "retokenize"
        except Untranslatable:
            return [], "retokenize"

    def on_accept(self, result) -> None:
        self.schedule.update(result.n_accepted, self._depth)
