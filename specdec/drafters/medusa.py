"""Medusa drafting (Cai et al. 2024): K heads on the target's last feature propose depths 1..K at once, arranged
in a static candidate tree.

The tree is a set of paths of candidate ranks, e.g. (0, 1) = head 1's best token, then head 2's second best.
It is chosen from the heads' measured top-k accuracies on held-out data (stored with the trained heads): a
path's value is the product of its ranks' accuracies, and the most valuable paths form the tree (a path never
beats its prefix, so the set is closed under prefixes): at most `nodes`, and with `fit` (the default) only as
many as maximise expected tokens per second under the target's measured verification cost curve
(specdec/drafters/cost.py), a path's value being its expected acceptance. Candidates are deterministic top-k
picks.
"""

from __future__ import annotations

import heapq
import math

import torch

from specdec.drafters import register
from specdec.drafters.base import DecodeState, Forkable
from specdec.drafters.cost import best_size, fit_costs
from specdec.drafters.trained import load_trained
from specdec.errors import ConfigError
from specdec.heads.medusa import MedusaNet
from specdec.types import Draft, VerifyResult


def tree_from_accuracies(accuracy: list[list[float]], nodes: int) -> list[tuple[int, ...]]:
    """The `nodes` paths of highest product accuracy; accuracy[k][r] = P(head k+1's rank-r token is right).
    Returned in order of selection (every prefix before its extensions), so values never increase."""
    heads, ranks = len(accuracy), len(accuracy[0]) if accuracy else 0
    heap = [(-accuracy[0][r], (r,)) for r in range(ranks)] if heads else []
    heapq.heapify(heap)
    paths: list[tuple[int, ...]] = []
    while heap and len(paths) < nodes:
        neg, path = heapq.heappop(heap)
        paths.append(path)
        if len(path) < heads:
            for r in range(ranks):
                heapq.heappush(heap, (neg * accuracy[len(path)][r], path + (r,)))
    return paths


class MedusaDrafter(Forkable):
    hidden_layers: tuple[int, ...] = (-1,)

    def __init__(self, net: MedusaNet, paths: list[tuple[int, ...]], values: list[float] | None = None):
        """values: each path's expected acceptance (path_value), handed on as the draft's confidence."""
        if not paths:
            raise ConfigError("medusa tree is empty; accepted: nodes >= 1")
        self.net = net.eval()
        self.paths = paths
        self.values = None if values is None else torch.tensor(values[:len(paths)], dtype=torch.float32)
        index = {p: i for i, p in enumerate(paths)}
        self.parents = torch.tensor([index[p[:-1]] if len(p) > 1 else -1 for p in paths], dtype=torch.long)
        self.depth_of = torch.tensor([len(p) - 1 for p in paths])          # head index of each node
        self.rank_of = torch.tensor([p[-1] for p in paths])
        self.max_rank = int(self.rank_of.max()) + 1

    def begin(self, prompt_ids: list[int]) -> None:
        pass

    @torch.inference_mode()
    def propose(self, state: DecodeState) -> Draft:
        feats = state.hidden.get(-1)
        n = min(len(self.paths), state.max_nodes)
        if feats is None or feats.shape[0] == 0 or n <= 0 or state.max_depth <= 0:
            return Draft.chain(torch.zeros(0, dtype=torch.long))
        logits = self.net(feats[-1])                                          # [heads, draft vocab]
        top = torch.topk(logits, self.max_rank, dim=-1).indices               # [heads, max rank]
        tokens = self.net.token_ids[top[self.depth_of, self.rank_of]].cpu()
        keep = (self.depth_of[:n] < state.max_depth).nonzero().flatten()      # prefix-closed: paths sorted
        draft = Draft(tokens[:n], self.parents[:n], confidence=None if self.values is None else self.values[:n])
        return draft if keep.numel() == n else draft.select(keep)

    def on_accept(self, result: VerifyResult) -> None:
        pass


def path_value(accuracy: list[list[float]], path: tuple[int, ...]) -> float:
    """Expected acceptance of a path: the product of its ranks' accuracies."""
    return math.prod(accuracy[depth][rank] for depth, rank in enumerate(path))


@register("medusa", "Medusa heads with a static tree from measured head accuracies (-o drafter=DIR; -o nodes=N)")
def make_medusa(target, drafter: str | None = None, nodes: int | None = None, fit: bool = True) -> MedusaDrafter:
    net, config, _ = load_trained(target, "medusa", drafter)
    nodes = nodes if nodes is not None else config.get("decode_defaults", {}).get("nodes", 16)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ConfigError(f"medusa option nodes={nodes!r} is invalid; accepted: an integer >= 1")
    costs = fit_costs(target, fit)
    paths = tree_from_accuracies(config["accuracy"], nodes)
    values = [path_value(config["accuracy"], p) for p in paths]
    if costs is not None:      # the tree is static: sized once; at least one node, or it would never draft
        paths = paths[:max(1, best_size(values, costs))]
    return MedusaDrafter(net, paths, values)
