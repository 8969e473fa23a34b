"""The `distilled` kind: a few Llama layers over the target's embedding (specdec/heads/distilled.py), trained to
match the target's next-token distributions (specdec/train/distill.py); decoded by the `distilled` method
(specdec/drafters/distilled.py) as a draft model."""

from __future__ import annotations

from dataclasses import dataclass

from specdec.train.kinds import register_kind
from specdec.train.kinds.base import TrainedKind, option


@dataclass(frozen=True)
class DistilledOptions:
    layers: int = option(2, "number of layers (default 2)")


class DistilledKind(TrainedKind):
    name = "distilled"
    description = "a small draft model distilled from the target, its layers started from evenly spaced target layers"
    options = DistilledOptions
    decode_defaults = {"num_draft": 4, "adaptive": True}

    def shape(self, config: dict) -> dict:
        return {"layers": int(config["num_layers"])}

    def network(self, target, token_ids, options: DistilledOptions):
        from specdec.heads.distilled import DistilledNet
        from specdec.heads.layer import LayerShape
        cfg, k = target.runtime.config, options.layers
        net = DistilledNet(LayerShape.of_target(cfg), k, len(token_ids))
        net.init_from_target(target, token_ids, [round(i * (cfg.num_layers - 1) / max(1, k - 1)) for i in range(k)])
        return net

    def objective(self, net, target, token_ids, options: DistilledOptions):
        from specdec.heads.target import embedding, lm_head_rows
        from specdec.train.distill import DistillObjective
        return DistillObjective(net, embedding(target).float(), lm_head_rows(target, token_ids).float())

    def load(self, config: dict, state: dict):
        from specdec.heads.distilled import DistilledNet
        from specdec.heads.layer import LayerShape
        net = DistilledNet(LayerShape(**config["shape"]), config["num_layers"], config["draft_vocab"])
        net.load_state_dict(state)
        return net


register_kind(DistilledKind())
