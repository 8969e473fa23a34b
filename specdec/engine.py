"""The speculative decode loop: propose -> verify -> accept -> roll back. Knows no method names.

Invariant: the cache holds every committed token except the last one, the *root*. Each step feeds
[root, draft nodes] to the target in one forward pass (a tree mask when the draft branches), so the target's
logits row 0 is its distribution after the root and row i+1 its distribution after draft node i. The verifier
keeps a root path and adds one recovered/bonus token; the cache keeps the root and the accepted nodes
(moved into contiguous slots) and the new token becomes the root. Vanilla decoding is the empty draft.
A draft's trailing *scratch* nodes are scored in the same pass but never verified or kept; the drafter gets
the target's argmax after each of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from specdec.config import SamplingParams
from specdec.drafters.base import DecodeState, NoDraft, Proposer
from specdec.errors import ContextLengthError, ConfigError
from specdec.models.runtime import Cache
from specdec.tree import tree_inputs
from specdec.types import Draft, GenerationStats, VerifyResult
from specdec.verify import LOSSY_RULES, VERIFY_RULES, verify_draft

if TYPE_CHECKING:
    from specdec.models.load import LoadedModel


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]                   # new tokens only (stop token excluded)
    finish_reason: str                     # "stop" (EOS or stop string) or "length"
    stats: GenerationStats
    lossy: bool = False                    # True when a lossy verification rule produced this output
    prompt_ids: list[int] = field(default_factory=list)


class SpeculativeDecoder:
    """Speculative decoding of `target` with `drafter` (None = vanilla)."""

    def __init__(self, target: LoadedModel, drafter: Proposer | None = None, *, rule: str = "exact"):
        if rule not in VERIFY_RULES:
            raise ConfigError(f"verification rule {rule!r} is unknown; accepted: {', '.join(sorted(VERIFY_RULES))}")
        self.target, self.drafter, self.rule = target, drafter or NoDraft(), rule

    def generate(self, prompt: str | list[int], max_new_tokens: int = 128, sampling: SamplingParams | None = None,
                 *, chat: bool = True, stop: tuple[str, ...] = (),
                 on_tokens: Callable[[list[int]], None] | None = None) -> GenerationResult:
        sampling = sampling or SamplingParams()
        prompt_ids = self.target.encode(prompt, chat=chat) if isinstance(prompt, str) else list(prompt)
        self._check_lengths(prompt_ids, max_new_tokens)
        rt, stats = self.target.runtime, GenerationStats(prompt_tokens=len(prompt_ids))
        gen = _generator(sampling.seed)
        t0 = time.perf_counter()
        capacity = min(rt.max_context, len(prompt_ids) + max_new_tokens + 1)
        cache = rt.new_cache(capacity)
        self.drafter.begin(prompt_ids)
        out = rt.forward(torch.tensor([prompt_ids[:-1]], device=rt.device), cache, logits="none",
                         hidden_layers=self.drafter.hidden_layers) if len(prompt_ids) > 1 else None
        hidden = {k: v[0] for k, v in out.hidden.items()} if out else {}
        stats.prefill_seconds = time.perf_counter() - t0
        tokens, new, finish = list(prompt_ids), [], "length"
        while len(new) < max_new_tokens:
            t1 = time.perf_counter()
            room = capacity - cache.length - 1          # draft nodes that still fit after the root
            state = DecodeState(tokens, sampling, gen, max_depth=min(max_new_tokens - len(new) - 1, room),
                                max_nodes=room, hidden=hidden, cache=cache)
            draft = self.drafter.propose(state)
            t2 = time.perf_counter()
            result, hidden = self._verify(draft, tokens[-1], cache, sampling, gen)
            self.drafter.on_accept(result)
            stats.draft_seconds += t2 - t1
            stats.verify_seconds += time.perf_counter() - t2
            stats.count(draft, result)
            emitted, finish = self._stop(result.tokens, new, max_new_tokens, stop)
            new += emitted
            tokens += result.tokens
            if on_tokens and emitted:
                on_tokens(emitted)
            if finish == "stop":
                break
        text = self.target.decode(new)
        stats.new_tokens, stats.seconds = len(new), time.perf_counter() - t0
        return GenerationResult(text, new, finish, stats, self.rule in LOSSY_RULES and not sampling.greedy,
                                prompt_ids)

    def _verify(self, draft: Draft, root: int, cache: Cache, sampling: SamplingParams,
                gen: torch.Generator) -> tuple[VerifyResult, dict]:
        """One target pass over [root, draft]; keep the root and the accepted path in the cache (scratch rows
        are dropped: the verifier sees only the other nodes, the drafter the argmax at scratch rows)."""
        rt, start = self.target.runtime, cache.length
        ids = torch.cat([torch.tensor([root]), draft.tokens.cpu()]).unsqueeze(0).to(rt.device)
        if draft.is_chain:
            out = rt.forward(ids, cache, hidden_layers=self.drafter.hidden_layers)
        else:
            mask, positions = tree_inputs(draft.parents, start)
            out = rt.forward(ids, cache, positions=positions.to(rt.device), tree_mask=mask,
                             hidden_layers=self.drafter.hidden_layers)
        logits, m = out.logits[0].float(), draft.size - draft.n_scratch    # [n+1, vocab]; verifiable nodes
        # Row 0 predicts sequence position start + 1: the cache holds every committed token but the root.
        result = verify_draft(draft.verifiable(), logits[:m + 1], sampling, gen, self.rule, position=start + 1)
        if draft.n_scratch:
            result.scratch_argmax = logits[m + 1:].argmax(-1).cpu()
        keep = [0] + [i + 1 for i in result.accepted_path]
        cache.keep(start, keep)
        rows = torch.tensor(keep, device=rt.device)
        return result, {k: v[0, rows] for k, v in out.hidden.items()}

    def _stop(self, step_tokens: list[int], new: list[int], max_new: int, stop: tuple[str, ...]):
        """Tokens of this step to emit, and "stop" / "length" if the request ends within them."""
        eos = self.target.eos_token_ids
        for i, tok in enumerate(step_tokens):
            if tok in eos:
                return step_tokens[:i], "stop"
            if len(new) + i + 1 >= max_new:
                return step_tokens[:i + 1], "length"
        if stop:
            text = self.target.decode(new + step_tokens)
            for s in stop:
                if s in text:   # cut at the first token whose text completes the stop string
                    for i in range(len(step_tokens)):
                        if s in self.target.decode(new + step_tokens[:i + 1]):
                            return step_tokens[:i + 1], "stop"
        return step_tokens, "length"

    def _check_lengths(self, prompt_ids: list[int], max_new_tokens: int) -> None:
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens={max_new_tokens!r} is invalid; accepted: an integer >= 1")
        if not prompt_ids:
            raise ConfigError("the prompt is empty; accepted: at least one token")
        window = self.target.runtime.max_context
        if len(prompt_ids) + max_new_tokens > window:
            raise ContextLengthError(
                f"prompt of {len(prompt_ids)} tokens + max_new_tokens={max_new_tokens} exceeds the context window "
                f"of {window} tokens of {self.target.name}; shorten the prompt or lower max_new_tokens")


def _generator(seed: int | None) -> torch.Generator:
    """This request's own random stream: seeded, or from fresh OS entropy (never the process-wide torch RNG)."""
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen
