"""Freshly initialised trained-drafter networks for tiny targets (tests need no training to check losslessness)."""

from __future__ import annotations

import torch

from specdec.drafters.distilled import DistilledRuntime, _DraftModel
from specdec.drafters.draft_model import DraftModelDrafter
from specdec.drafters.eagle import EagleDrafter
from specdec.drafters.medusa import MedusaDrafter, path_value, tree_from_accuracies
from specdec.drafters.trained import place
from specdec.heads.distilled import DistilledNet
from specdec.heads.eagle import EagleNet
from specdec.heads.eagle3 import Eagle3Net
from specdec.heads.layer import LayerShape
from specdec.heads.medusa import MedusaNet


def vocab_ids(target, size: int | None = None) -> torch.Tensor:
    v = target.runtime.vocab_size
    return torch.arange(v if size is None else min(size, v))


def eagle_drafter(target, seed: int = 0, draft_vocab: int | None = None, fuse: tuple[int, ...] = (),
                  **options) -> EagleDrafter:
    torch.manual_seed(seed)
    net = EagleNet(LayerShape.of_target(target.runtime.config), len(vocab_ids(target, draft_vocab)), fuse)
    net.init_from_target(target, vocab_ids(target, draft_vocab))
    if fuse:                                          # a fusion that really mixes the extra layers in
        with torch.no_grad():
            net.fuse.weight.add_(0.3 * torch.randn_like(net.fuse.weight))
    return EagleDrafter(place(net, target), target.runtime.embed, **options)


def eagle3_drafter(target, seed: int = 0, draft_vocab: int | None = None, aux: tuple[int, ...] | None = None,
                   **options) -> EagleDrafter:
    """aux: the target layers fused (default: the first and the last)."""
    torch.manual_seed(seed)
    aux = aux or tuple(sorted({0, target.runtime.num_layers - 1}))
    net = Eagle3Net(LayerShape.of_target(target.runtime.config), len(vocab_ids(target, draft_vocab)), aux)
    net.init_from_target(target, vocab_ids(target, draft_vocab))
    with torch.no_grad():                             # a fusion that really mixes every aux layer in
        net.fc.weight.add_(0.3 * torch.randn_like(net.fc.weight))
    return EagleDrafter(place(net, target), target.runtime.embed, **options)


def medusa_drafter(target, seed: int = 0, heads: int = 3, nodes: int = 8, draft_vocab: int | None = None):
    torch.manual_seed(seed)
    net = MedusaNet(target.runtime.config.hidden_size, heads, len(vocab_ids(target, draft_vocab)))
    net.init_from_target(target, vocab_ids(target, draft_vocab))
    with torch.no_grad():                             # random blocks, so heads differ from the identity
        for block in net.blocks:
            block[0].linear.weight.normal_(0, 0.3)
    acc = [[0.5 / (r + 1) / (k + 1) for r in range(4)] for k in range(heads)]
    paths = tree_from_accuracies(acc, nodes)
    return MedusaDrafter(place(net, target), paths, [path_value(acc, p) for p in paths])


def distilled_drafter(target, seed: int = 0, layers: int = 1, draft_vocab: int | None = None, **options):
    torch.manual_seed(seed)
    rt = target.runtime
    net = DistilledNet(LayerShape.of_target(rt.config), layers, len(vocab_ids(target, draft_vocab)))
    net.init_from_target(target, vocab_ids(target, draft_vocab), list(range(layers)))
    model = _DraftModel("distilled:test", DistilledRuntime(place(net, target), rt.embed, rt.vocab_size))
    return DraftModelDrafter(model, target_vocab=rt.vocab_size, **options)
