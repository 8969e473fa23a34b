"""The `medusa` kind: K residual heads on the target's last feature (specdec/heads/medusa.py), each trained to
predict one token further ahead (specdec/train/medusa.py); decoded by the `medusa` method
(specdec/drafters/medusa.py) with a tree built from the heads' measured accuracies."""

from __future__ import annotations

from dataclasses import dataclass

from specdec.train.kinds import register_kind
from specdec.train.kinds.base import TrainedKind, option


@dataclass(frozen=True)
class MedusaOptions:
    heads: int = option(4, "number of heads (default 4)")


class MedusaKind(TrainedKind):
    name = "medusa"
    description = "Medusa heads, decoded with a static tree from their measured accuracies"
    options = MedusaOptions
    decode_defaults = {"nodes": 16}

    def shape(self, config: dict) -> dict:
        return {"heads": int(config["num_heads"])}

    def network(self, target, token_ids, options: MedusaOptions):
        from specdec.heads.medusa import MedusaNet
        net = MedusaNet(target.runtime.config.hidden_size, options.heads, len(token_ids))
        net.init_from_target(target, token_ids)
        return net

    def objective(self, net, target, token_ids, options: MedusaOptions):
        from specdec.train.medusa import MedusaObjective
        return MedusaObjective(net, target.runtime.vocab_size)

    def load(self, config: dict, state: dict):
        from specdec.heads.medusa import MedusaNet
        net = MedusaNet(config["hidden"], config["num_heads"], config["draft_vocab"], config.get("layers_per_head", 1))
        net.load_state_dict(state)
        return net


register_kind(MedusaKind())
