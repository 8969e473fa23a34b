"""EAGLE drafting with dynamic trees (EAGLE-2, Li et al. 2024).

The feature head (specdec/heads/eagle.py) keeps its own one-layer KV cache over the committed positions. Each
step it first appends the features the target just produced (paired with the tokens that follow them), then
grows a tree: level by level, the `topk` nodes with the highest cumulative draft log-probability are run
through the head together (tree-masked) and each proposes its `topk` best children; finally the best nodes of
all levels form the draft (a child never scores above its parent, so the set is closed under ancestors): at
most `nodes` of them, and with `fit` (the default) only as many as maximise expected tokens per second under the
target's measured verification cost curve (specdec/drafters/cost.py), each node's expected acceptance taken as
its cumulative draft probability (EAGLE-2's observation that draft confidence tracks acceptance). Children are
deterministic top-k picks, so the draft carries no draft_probs.
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from specdec.drafters import register
from specdec.drafters.base import DecodeState, Forkable
from specdec.drafters.cost import CostCurve, best_size, fit_costs
from specdec.drafters.trained import load_trained
from specdec.errors import ConfigError
from specdec.heads.eagle import EagleNet
from specdec.kv import KVCache
from specdec.types import Draft, VerifyResult


class EagleDrafter(Forkable):
    def __init__(self, net: EagleNet, embed: Tensor, *, depth: int = 6, topk: int = 4, nodes: int = 16,
                 costs: CostCurve | None = None):
        for name, v in (("depth", depth), ("topk", topk), ("nodes", nodes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"eagle option {name}={v!r} is invalid; accepted: an integer >= 1")
        self.net, self.embed = net.eval(), embed           # embed: the target's [vocab, hidden]
        self.hidden_layers = net.feature_layers            # the target states the engine hands over
        self.depth, self.topk, self.nodes = depth, topk, nodes
        self.costs = costs                                 # None: always `nodes` nodes (fixed size)
        self.cache: KVCache | None = None
        self.entries = 0                                   # committed positions the head's cache holds
        self.last: Tensor | None = None                    # [hidden] predicted feature at the root

    def begin(self, prompt_ids: list[int]) -> None:
        self.cache, self.entries, self.last = None, 0, None

    @torch.inference_mode()
    def propose(self, state: DecodeState) -> Draft:
        started = time.perf_counter()
        self._catch_up(state)
        budget = min(self.nodes, state.max_nodes)
        depth = min(self.depth, state.max_depth)
        if budget <= 0 or depth <= 0 or self.last is None:
            return Draft.chain(torch.zeros(0, dtype=torch.long))
        tokens, parents, scores = self._grow(depth, budget)
        self.cache.crop(self.entries)
        if self.costs is not None:
            best = sorted(scores, reverse=True)[:budget]
            budget = best_size([math.exp(v) for v in best], self.costs, time.perf_counter() - started)
        return _select(tokens, parents, scores, budget)

    def _catch_up(self, state: DecodeState) -> None:
        """Append entries (f_p, e(x_{p+1})) for the positions the target just committed."""
        feats = self.net.committed_input(state.hidden)              # [k, hidden]
        if feats is None or feats.shape[0] == 0:
            return
        s = self.net.shape
        if self.cache is None:
            cap = min(s.max_context, len(state.tokens) + state.room + self.depth * self.topk + 2)
            self.cache = KVCache(1, s.kv_heads, s.head_dim, cap, dtype=feats.dtype, device=feats.device)
        k = feats.shape[0]
        nxt = torch.tensor(state.tokens[self.entries + 1:self.entries + k + 1], device=feats.device)
        positions = torch.arange(self.entries, self.entries + k, device=feats.device)
        g = self.net(feats.unsqueeze(0), self.embed[nxt].unsqueeze(0), positions, cache=self.cache)
        self.entries += k
        self.last = g[0, -1]

    def _grow(self, depth: int, budget: int) -> tuple[list[int], list[int], list[float]]:
        tokens: list[int] = []
        parents: list[int] = []
        scores: list[float] = []                 # cumulative draft log-probability of each node
        self._rows: dict[int, list[int]] = {}    # expanded node -> draft-entry slots of its path (own last)
        frontier = [(-1, 0.0, self.last)]        # (node, score, predicted feature after the node)
        for level in range(depth):
            first = len(tokens)
            logp = torch.log_softmax(self.net.logits(torch.stack([g for _, _, g in frontier])).float(), -1)
            top = torch.topk(logp, min(self.topk, logp.shape[-1]), dim=-1)       # one product for the level
            values, ids = top.values.tolist(), self.net.token_ids[top.indices].tolist()
            for (node, score, _), vs, ts in zip(frontier, values, ids):
                for v, t in zip(vs, ts):
                    tokens.append(t)
                    parents.append(node)
                    scores.append(score + v)
            if level + 1 == depth:
                break
            beam = sorted(range(first, len(tokens)), key=lambda i: -scores[i])[:self.topk]
            frontier = self._expand(beam, tokens, parents, scores, {n: g for n, _, g in frontier})
        return tokens, parents, scores

    def _expand(self, beam: list[int], tokens, parents, scores, feature_of: dict) -> list:
        """Run the beam nodes through the head as one tree-masked batch; return their (node, score, g)."""
        before = self.cache.length - self.entries            # draft entries already in the cache
        rows = []
        for i, node in enumerate(beam):
            rows.append(self._rows.get(parents[node], []) + [before + i])
            self._rows[node] = rows[-1]
        mask = torch.zeros(len(beam), self.cache.length + len(beam), dtype=torch.bool)
        mask[:, :self.entries] = True                          # every committed position
        for i, r in enumerate(rows):
            mask[i, [self.entries + j for j in r]] = True      # the node's own path
        positions = torch.tensor([self.entries + len(r) - 1 for r in rows])
        feats = torch.stack([feature_of[parents[n]] for n in beam]).unsqueeze(0)
        embeds = self.embed[torch.tensor([tokens[n] for n in beam])].unsqueeze(0)
        g = self.net(feats, embeds, positions.to(feats.device), cache=self.cache, mask=mask.to(feats.device))
        return [(n, scores[n], g[0, i]) for i, n in enumerate(beam)]

    def on_accept(self, result: VerifyResult) -> None:
        pass


def _select(tokens: list[int], parents: list[int], scores: list[float], budget: int) -> Draft:
    """The `budget` best nodes (ancestor-closed: ties keep creation order, parents come first), reindexed; each
    node's confidence is its cumulative draft probability."""
    grown = Draft(torch.tensor(tokens, dtype=torch.long), torch.tensor(parents, dtype=torch.long),
                  confidence=torch.tensor([math.exp(v) for v in scores], dtype=torch.float32))
    return grown.select(sorted(sorted(range(len(tokens)), key=lambda i: (-scores[i], i))[:budget]))


@register("eagle", "EAGLE-2 feature head with dynamic draft trees (-o drafter=DIR; shipped for smollm2-135m)")
def make_eagle(target, drafter: str | None = None, fit: bool = True, **options) -> EagleDrafter:
    costs = fit_costs(target, fit)
    net, config, _ = load_trained(target, "eagle", drafter)
    if any(not 0 <= i < target.runtime.num_layers for i in net.extra_layers):
        raise ConfigError(f"eagle drafter fuses target layers {list(net.extra_layers)}, but {target.name!r} has "
                          f"{target.runtime.num_layers} layers; accepted: a drafter trained for this target")
    defaults = dict(config.get("decode_defaults", {}))
    defaults.update(options)
    return EagleDrafter(net, target.runtime.embed, costs=costs, **defaults)


@register("eagle3", "EAGLE-3 head with dynamic draft trees (-o drafter=DIR: trained by `specdec train eagle3`, or "
                    "a head in vLLM, SGLang or speculators layout)")
def make_eagle3(target, drafter: str | None = None, fit: bool = True, **options) -> EagleDrafter:
    from specdec.export.eagle3 import is_engine_dir, read_engine_dir
    costs = fit_costs(target, fit)
    if drafter is not None and is_engine_dir(drafter):          # trained elsewhere (SpecForge, speculators) or exported
        from specdec.drafters.trained import place
        from specdec.train.kinds import get_kind
        config, state = read_engine_dir(drafter, target)
        net = place(get_kind("eagle3").load(config, state), target)
    else:
        net, config, _ = load_trained(target, "eagle3", drafter)
    if any(not 0 <= i < target.runtime.num_layers for i in net.aux_layers):
        raise ConfigError(f"eagle3 drafter reads target layers {list(net.aux_layers)}, but {target.name!r} has "
                          f"{target.runtime.num_layers} layers; accepted: a drafter trained for this target")
    defaults = dict(config.get("decode_defaults", {}))
    defaults.update(options)
    return EagleDrafter(net, target.runtime.embed, costs=costs, **defaults)
