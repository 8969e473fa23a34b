"""The `eagle` kind: a feature head (specdec/heads/eagle.py) trained with training-time test
(specdec/train/eagle.py), optionally fusing earlier target layers EAGLE-3 style; decoded by the `eagle` method
(specdec/drafters/eagle.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from specdec.errors import ConfigError
from specdec.train.kinds import register_kind
from specdec.train.kinds.base import TrainedKind, layer_list, number, option


@dataclass(frozen=True)
class EagleOptions:
    unroll: int = option(3, "training-time-test steps (default 3)")
    fuse_layers: tuple[int, ...] = option(
        (), "comma-separated target layers (0-based) whose residual streams are fused with the final feature, "
            "EAGLE-3 style, e.g. 2,15 (default: the final feature alone)", type=str, parse=layer_list)
    feature_weight: float = option(
        1.0, "weight of the feature regression loss (default 1, as EAGLE-1; 0 drops it, as EAGLE-3)",
        type=float, parse=number)
    cls_weight: float = option(0.1, "weight of the cross-entropy against the target's distribution (default 0.1)",
                               type=float, parse=number)


class EagleKind(TrainedKind):
    name = "eagle"
    description = "EAGLE feature head (dynamic draft trees as EAGLE-2; --fuse-layers fuses layers as EAGLE-3)"
    options = EagleOptions
    decode_defaults = {"depth": 6, "topk": 4, "nodes": 16}

    def check(self, options: EagleOptions, target) -> None:
        check_fuse_layers(options.fuse_layers, target)
        check_loss_weights(options.feature_weight, options.cls_weight)

    def target_layers(self, options: EagleOptions, target) -> tuple[int, ...]:
        return options.fuse_layers

    def shape(self, config: dict) -> dict:
        return {"fuse_layers": tuple(i for i in config.get("feature_layers", [-1]) if i != -1)}

    def network(self, target, token_ids, options: EagleOptions):
        from specdec.heads.eagle import EagleNet
        from specdec.heads.layer import LayerShape
        net = EagleNet(LayerShape.of_target(target.runtime.config), len(token_ids), options.fuse_layers)
        net.init_from_target(target, token_ids)
        return net

    def objective(self, net, target, token_ids, options: EagleOptions):
        from specdec.heads.target import embedding, lm_head_rows
        from specdec.train.eagle import EagleObjective
        embed, rows = embedding(target).float(), lm_head_rows(target, token_ids).float()
        return EagleObjective(net, embed, rows, unroll=options.unroll, w_reg=options.feature_weight,
                              w_cls=options.cls_weight)

    def load(self, config: dict, state: dict):
        from specdec.heads.eagle import EagleNet
        from specdec.heads.layer import LayerShape
        extra = [i for i in config.get("feature_layers", [-1]) if i != -1]
        net = EagleNet(LayerShape(**config["shape"]), config["draft_vocab"], tuple(extra))
        net.load_state_dict(state)
        return net


def check_fuse_layers(layers: tuple[int, ...], target) -> None:
    n = target.runtime.num_layers
    if len(set(layers)) != len(layers) or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n
                                              for i in layers):
        raise ConfigError(f"fuse layers {list(layers)} are invalid for {target.name!r}; accepted: distinct layer "
                          f"indices from 0 to {n - 1}")


def check_loss_weights(feature_weight: float, cls_weight: float) -> None:
    for name, w in (("feature weight", feature_weight), ("cls weight", cls_weight)):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ConfigError(f"eagle {name} {w!r} is invalid; accepted: a finite number >= 0")
    if feature_weight == 0 and cls_weight == 0:
        raise ConfigError("eagle feature weight and cls weight are both 0; accepted: at least one above 0")


register_kind(EagleKind())
