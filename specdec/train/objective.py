"""What the training loop and the pipeline need from a kind's objective (eagle.py, medusa.py, distill.py here;
a kind builds its objective in specdec/train/kinds/)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor, nn

    from specdec.train.batches import Batch


@runtime_checkable
class Objective(Protocol):
    """A network and how to train it. `model` is trained by the loop (its parameters, its device; checkpoints
    hold its state_dict); `describe()` names the settings a checkpoint must match to resume; `loss` and
    `evaluate` return metrics by name (floats, logged and shown); `export()` gives the config (with at least
    "draft_vocab", the size of its draft vocabulary) and the weights that specdec/heads/io.save_drafter writes,
    which the kind's `load` turns back into the network. `needs_evaluation`: export() reads measurements of an
    evaluate() in this process that has not run yet (Medusa's tree is built from its measured accuracies)."""

    model: nn.Module
    needs_evaluation: bool

    def describe(self) -> dict: ...

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]: ...      # (scalar loss, metrics)

    def evaluate(self, batches: list[Batch]) -> dict[str, float]: ...

    def export(self) -> tuple[dict, dict[str, Tensor]]: ...                    # (config, state_dict)
