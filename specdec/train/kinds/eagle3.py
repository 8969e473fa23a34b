"""The `eagle3` kind: EAGLE-3's Llama head exactly as vLLM and SGLang load it (specdec/heads/eagle3.py), trained
with training-time test against the target's distribution only (EAGLE-3 drops EAGLE-1's feature regression);
decoded by the `eagle3` method with EAGLE-2 dynamic trees (specdec/drafters/eagle.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from specdec.errors import ConfigError
from specdec.train.kinds import register_kind
from specdec.train.kinds.base import TrainedKind, layer_list, option


def default_aux_layers(num_layers: int) -> tuple[int, ...]:
    """EAGLE-3's low, middle and high layers: the residual streams entering layers 2, L//2 and L-3 (the engines'
    default), i.e. the outputs of layers 1, L//2 - 1 and L - 4 in specdec's naming. Below 6 layers: the first,
    middle and last layers' outputs."""
    if num_layers < 6:
        return (0, num_layers // 2, num_layers - 1)
    return (1, num_layers // 2 - 1, num_layers - 4)


@dataclass(frozen=True)
class Eagle3Options:
    unroll: int = option(3, "training-time-test steps (default 3)")
    aux_layers: tuple[int, ...] = option(
        (), "comma-separated target layers (0-based) whose outputs the head fuses, low to high (default: EAGLE-3's "
            "1, L/2-1, L-4: the residual streams entering layers 2, L/2 and L-3)", type=str, parse=layer_list)


class Eagle3Kind(TrainedKind):
    name = "eagle3"
    description = "EAGLE-3 head (fused low/middle/high target layers; exportable to vLLM and SGLang)"
    options = Eagle3Options
    decode_defaults = {"depth": 6, "topk": 4, "nodes": 16}

    def for_target(self, options: Eagle3Options, target) -> Eagle3Options:
        return replace(options, aux_layers=options.aux_layers or default_aux_layers(target.runtime.num_layers))

    def _aux(self, options: Eagle3Options, target) -> tuple[int, ...]:
        return self.for_target(options, target).aux_layers

    def check(self, options: Eagle3Options, target) -> None:
        n = target.runtime.num_layers
        layers = self._aux(options, target)
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n for i in layers):
            raise ConfigError(f"aux layers {list(layers)} are invalid for {target.name!r}; accepted: layer "
                              f"indices from 0 to {n - 1}")

    def target_layers(self, options: Eagle3Options, target) -> tuple[int, ...]:
        return self._aux(options, target)

    def shape(self, config: dict) -> dict:
        return {"aux_layers": tuple(config["feature_layers"])}

    def network(self, target, token_ids, options: Eagle3Options):
        from specdec.heads.eagle3 import Eagle3Net
        from specdec.heads.layer import LayerShape
        net = Eagle3Net(LayerShape.of_target(target.runtime.config), len(token_ids), self._aux(options, target))
        net.init_from_target(target, token_ids)
        return net

    def objective(self, net, target, token_ids, options: Eagle3Options):
        from specdec.heads.target import embedding, lm_head_rows
        from specdec.train.eagle import EagleObjective
        embed, rows = embedding(target).float(), lm_head_rows(target, token_ids).float()
        return EagleObjective(net, embed, rows, unroll=options.unroll, w_reg=0.0, w_cls=1.0, kind="eagle3")

    def load(self, config: dict, state: dict):
        from specdec.heads.eagle3 import Eagle3Net
        from specdec.heads.layer import LayerShape
        net = Eagle3Net(LayerShape(**config["shape"]), config["draft_vocab"], tuple(config["feature_layers"]))
        net.load_state_dict(state)
        return net


register_kind(Eagle3Kind())
