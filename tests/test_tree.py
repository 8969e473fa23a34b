"""Tree inputs (specdec/tree.py): the ancestor mask and depths of a draft tree, built once per shape and device."""

import torch

from specdec.tree import tree_inputs
from tests.tiny import TEST_DEVICE


def test_mask_holds_each_nodes_ancestors_and_positions_count_depth():
    parents = torch.tensor([-1, -1, 0, 2, 1])                  # root -> 0 -> 2 -> 3, root -> 1 -> 4
    mask, positions = tree_inputs(parents, start=10)
    ancestors = {0: [0], 1: [0, 1], 2: [0, 2], 3: [0, 1, 3], 4: [0, 1, 3, 4], 5: [0, 2, 5]}   # rows: root, nodes
    assert mask.tolist() == [[j in ancestors[i] for j in range(6)] for i in range(6)]
    assert positions.tolist() == [10, 11, 11, 12, 13, 12]


def test_a_shape_is_built_once_per_device_and_reused_with_any_start():
    parents = torch.tensor([-1, 0, 0, 1])
    mask, positions = tree_inputs(parents, 5, TEST_DEVICE)
    again, later = tree_inputs(parents.clone(), 9, TEST_DEVICE)
    assert again is mask and mask.device.type == torch.device(TEST_DEVICE).type
    assert later.tolist() == [p + 4 for p in positions.tolist()] and later.device == mask.device
    other, _ = tree_inputs(torch.tensor([-1, 0, 1, 1]), 5, TEST_DEVICE)
    assert other is not mask and not torch.equal(other, mask)
