"""An independent draft model that shares the target's tokenizer (Leviathan et al. 2023; Chen et al. 2023).

The draft model keeps its own KV cache over the committed tokens. Each step it rolls back to the longest
prefix it shares with the committed tokens, catches up on the new ones, then drafts: a chain (sampled from
its distribution, so sampling stays exact with draft_probs) or, with ``branches > 1``, a tree grown level by
level from the top-``branches`` children of the best ``width`` nodes by cumulative draft probability, all
nodes of a level scored in one tree-masked pass (deterministic top-k children: draft_probs None).

With `costs` (the `fit` option), a chain's length is chosen per step from the target's measured verification
cost curve (specdec/drafters/cost.py) instead of the draft-length schedule: the chain keeps the prefix with the
highest expected tokens per second, a token's expected acceptance taken as the product of the draft
probabilities of the chain up to it, and drafting stops as soon as even a certain next token could not raise
that rate. The decision reads only the draft's own tokens and probabilities, so sampling stays exact.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from specdec.drafters import register
from specdec.drafters.base import DecodeState, Forkable
from specdec.drafters.cost import CostCurve, fit_costs
from specdec.drafters.schedule import DraftLength
from specdec.errors import ConfigError
from specdec.tree import tree_inputs
from specdec.types import Draft, VerifyResult
from specdec.verify import logits_to_probs


def check_same_vocabulary(target, draft) -> None:
    """The draft must tokenize exactly like the target, or its proposals mean different text."""
    if target.tokenizer is None or draft.tokenizer is None:
        same = target.runtime.vocab_size == draft.runtime.vocab_size
    else:
        same = target.tokenizer.get_vocab() == draft.tokenizer.get_vocab()
    if not same:
        raise ConfigError(f"draft model {draft.name!r} does not share the tokenizer of target {target.name!r}; "
                          f"accepted: a draft model with the identical vocabulary (e.g. a smaller model of the "
                          f"same family), or with tokenizers on both sides to draft through bytes")


class DraftModelDrafter(Forkable):
    per_request = ("schedule",)
    hidden_layers: tuple[int, ...] = ()

    def __init__(self, draft, *, num_draft: int = 4, adaptive: bool = True, branches: int = 1, width: int = 4,
                 max_draft: int = 12, target_vocab: int | None = None,
                 costs: CostCurve | None = None):
        if branches < 1 or width < 1:
            raise ConfigError(f"branches={branches}, width={width}; accepted: integers >= 1")
        if branches > 1 and not draft.runtime.supports_tree:
            raise ConfigError("tree drafting (branches > 1) needs a native draft model; use branches=1")
        self.model, self.rt = draft, draft.runtime
        self.branches, self.width = branches, width
        self.vocab = target_vocab or self.rt.vocab_size
        self.schedule = DraftLength(num_draft, adaptive, maximum=max(max_draft, num_draft))
        self.costs = costs if branches == 1 else None    # chains only: trees keep their level budget
        self.cache, self.cached = None, []       # cached: the tokens whose KV the draft cache holds
        self._depth = 0

    def begin(self, prompt_ids: list[int]) -> None:
        self.cache, self.cached = None, []
        self.schedule.reset()

    def _logits(self, logits: Tensor) -> Tensor:       # [..., draft vocab] -> [..., target vocab]
        if logits.shape[-1] == self.vocab:
            return logits.float()
        if logits.shape[-1] > self.vocab:
            return logits[..., :self.vocab].float()
        pad = logits.new_full((*logits.shape[:-1], self.vocab - logits.shape[-1]), float("-inf"))
        return torch.cat([logits.float(), pad], dim=-1)

    def _catch_up(self, tokens: list[int], room: int) -> Tensor:
        """Bring the draft cache to `tokens`; return the draft logits after the last one [vocab]."""
        if self.cache is None:
            self.cache = self.rt.new_cache(min(self.rt.max_context, len(tokens) + room + 2))
        common = 0
        for a, b in zip(self.cached, tokens[:-1]):       # keep at least the root to recompute its logits
            if a != b:
                break
            common += 1
        self.cache.crop(common)
        new = tokens[common:]
        out = self.rt.forward(torch.tensor([new], device=self.rt.device), self.cache, logits="last")
        self.cached = list(tokens)
        return self._logits(out.logits[0, -1])

    def propose(self, state: DecodeState) -> Draft:
        started = time.perf_counter()
        limit = self.schedule.maximum if self.costs is not None else self.schedule.length
        depth = min(limit, state.max_depth, state.max_nodes)
        if depth <= 0:
            self._depth = 0
            return Draft.chain(torch.zeros(0, dtype=torch.long))
        logits = self._catch_up(state.tokens, room=state.room + 1)   # the whole request fits from the start
        draft = (self._chain(logits, depth, state, started) if self.branches == 1
                 else self._tree(logits, depth, state))
        self.cache.crop(len(self.cached))                # forget draft positions; the root stays cached
        self._depth = draft.max_depth
        return draft

    def _chain(self, logits: Tensor, depth: int, state: DecodeState, started: float) -> Draft:
        tokens, probs, curve = [], [], self.costs
        reach, expected, best_n, best_rate, step_s = 1.0, 1.0, 0, 0.0, 0.0
        for i in range(depth):
            p = logits_to_probs(logits, state.sampling)                    # [vocab]
            tok = int(p.argmax()) if state.sampling.greedy else state.sample(p, depth=i + 1)
            tokens.append(tok)
            probs.append(p)
            if curve is not None:
                if i == 0:
                    best_rate = 1.0 / (time.perf_counter() - started + curve(1))      # drafting nothing
                # estimated chance the chain survives to this token (greedy p is one-hot: use the softmax)
                reach *= float(torch.softmax(logits, -1)[tok] if state.sampling.greedy else p[tok])
                expected += reach
                elapsed = time.perf_counter() - started
                if expected / (elapsed + curve(i + 2)) > best_rate:
                    best_n, best_rate = i + 1, expected / (elapsed + curve(i + 2))
                if (expected + reach) / (elapsed + step_s + curve(i + 3)) <= best_rate:
                    break                              # not even a certain next token would pay
            if i + 1 < depth:
                t0 = time.perf_counter()
                out = self.rt.forward(torch.tensor([[tok]], device=self.rt.device), self.cache, logits="last")
                logits = self._logits(out.logits[0, -1])
                step_s = time.perf_counter() - t0
        if curve is not None:
            tokens, probs = tokens[:best_n], probs[:best_n]
        if not tokens:
            return Draft.chain(torch.zeros(0, dtype=torch.long))
        draft_probs = None if state.sampling.greedy else torch.stack(probs)
        return Draft.chain(torch.tensor(tokens, dtype=torch.long), draft_probs)

    def _tree(self, logits: Tensor, depth: int, state: DecodeState) -> Draft:
        tokens, parents, scores = [], [], []             # scores: cumulative log prob of each node
        frontier = [(-1, 0.0, logits)]                  # (node, score, draft logits after it)
        start = self.cache.length
        for level in range(depth):
            cands = []
            for node, score, lg in frontier:
                logp = torch.log_softmax(lg, -1)
                top = torch.topk(logp, self.branches)
                cands += [(score + float(v), node, int(t)) for v, t in zip(top.values, top.indices)]
            cands.sort(key=lambda c: -c[0])
            room = state.max_nodes - len(tokens)
            chosen = cands[:min(self.width, room)]
            if not chosen:
                break
            first = len(tokens)
            for score, parent, tok in chosen:
                tokens.append(tok)
                parents.append(parent)
                scores.append(score)
            if level + 1 == depth:
                break
            frontier = self._score_level(tokens, parents, first, start, scores)
        return Draft(torch.tensor(tokens, dtype=torch.long), torch.tensor(parents, dtype=torch.long))

    def _score_level(self, tokens, parents, first: int, start: int, scores) -> list:
        """Run the nodes first.. (one level) through the draft model against all earlier nodes."""
        self.cache.crop(start)
        mask, positions = tree_inputs(torch.tensor(parents), start - 1)
        rows = slice(1, len(tokens) + 1)                 # drop the root row: it is already in the cache
        out = self.rt.forward(torch.tensor([tokens], device=self.rt.device), self.cache,
                              positions=positions[rows].to(self.rt.device), tree_mask=mask[rows, rows])
        logits = self._logits(out.logits[0])
        return [(i, scores[i], logits[i]) for i in range(first, len(tokens))]

    def on_accept(self, result: VerifyResult) -> None:
        self.schedule.update(result.n_accepted, self._depth)


@register("draft", "an independent draft model (-o model=NAME), chains or trees; a draft with another tokenizer "
                   "drafts through bytes (chains)")
def make_draft(target, model: str | None = None, dtype: str = "float32", fit: bool = False,
               **options) -> DraftModelDrafter:
    if model is None:
        raise ConfigError("method 'draft' needs a draft model: -o model=NAME (a registry name, .gguf file, "
                          "Hugging Face directory or hub id)")
    from specdec.models.load import load_model
    draft = load_model(model, dtype=dtype, device=str(target.runtime.device), quiet=True)
    return draft_for(target, draft, fit=fit, **options)


def draft_for(target, draft, fit: bool = False, **options) -> DraftModelDrafter:
    """The drafter for this pair: token for token when the tokenizers are the same, through bytes otherwise."""
    cross = {k: options.pop(k) for k in ("translate", "map_threshold") if k in options}
    try:
        check_same_vocabulary(target, draft)
    except ConfigError:
        if target.tokenizer is None or draft.tokenizer is None:
            raise
        from specdec.drafters.draft_cross import CrossTokenizerDrafter
        from specdec.drafters.translate import Vocabulary, check_pair
        if fit or options.get("branches", 1) != 1 or set(options) - {"num_draft", "adaptive", "max_draft"}:
            bad = "fit" if fit else "branches" if options.get("branches", 1) != 1 else sorted(
                set(options) - {"num_draft", "adaptive", "max_draft"})[0]
            raise ConfigError(f"option {bad!r} is not available with a draft model of another tokenizer; "
                              f"accepted: num_draft, adaptive, max_draft, translate, map_threshold") from None
        tv = Vocabulary(target.tokenizer, target.runtime.vocab_size)
        dv = Vocabulary(draft.tokenizer, draft.runtime.vocab_size)
        check_pair(tv, dv, target.name, draft.name)
        return CrossTokenizerDrafter(draft, tv, dv, **cross, **options)
    if cross and cross.get("translate", "auto") != "auto":
        raise ConfigError(f"translate={cross['translate']!r} needs a draft model with another tokenizer; draft "
                          f"{draft.name!r} shares the target's, so its tokens are used as they are")
    return DraftModelDrafter(draft, target_vocab=target.runtime.vocab_size, costs=fit_costs(target, fit), **options)
