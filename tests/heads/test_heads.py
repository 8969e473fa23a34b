"""Head networks: cached decoding equals a whole-sequence pass, the training-time-test mask matches decoding's
attention, the draft vocabulary and the save/load format."""

import pytest
import torch

from specdec.errors import ConfigError
from specdec.heads.distilled import DistilledNet
from specdec.heads.eagle import EagleNet
from specdec.heads.io import load_drafter, save_drafter
from specdec.heads.layer import LayerShape
from specdec.heads.vocab import coverage, select_draft_vocab, target_to_draft
from specdec.kv import KVCache
from specdec.train.eagle import _step_mask

SHAPE = LayerShape(hidden=32, heads=4, kv_heads=2, head_dim=8, intermediate=64, max_context=64)


def test_eagle_cached_pieces_equal_one_causal_pass():
    torch.manual_seed(0)
    net = EagleNet(SHAPE, 10).eval()
    f, e = torch.randn(1, 9, 32), torch.randn(1, 9, 32)
    full = net(f, e, torch.arange(9))
    cache = KVCache(1, 2, 8, 16)
    part1 = net(f[:, :5], e[:, :5], torch.arange(5), cache=cache)
    part2 = net(f[:, 5:], e[:, 5:], torch.arange(5, 9), cache=cache)
    torch.testing.assert_close(torch.cat([part1, part2], 1), full, atol=1e-5, rtol=1e-5)


def test_distilled_tree_mask_equals_separate_paths():
    torch.manual_seed(1)
    net = DistilledNet(SHAPE, 2, 10).eval()
    prefix, a, b = torch.randn(1, 4, 32), torch.randn(1, 1, 32), torch.randn(1, 1, 32)
    cache = KVCache(2, 2, 8, 16)
    net(prefix, torch.arange(4), cache=cache)
    both = net(torch.cat([a, b], 1), torch.tensor([4, 4]), cache=cache,
               mask=torch.tensor([[True, False], [False, True]]))     # siblings: same position, unseen
    for i, x in enumerate((a, b)):
        alone = net(torch.cat([prefix, x], 1), torch.arange(5))[:, -1]
        torch.testing.assert_close(both[:, i], alone, atol=1e-5, rtol=1e-5)


def test_training_time_test_mask():
    m = _step_mask(5, 3).int()
    # step 3 at p sees step-1 entries <= p-2, the step-2 entry at p-1 and itself (step-3 entry at p)
    assert m[4].tolist() == [1, 1, 1, 0, 0] + [0, 0, 0, 1, 0] + [0, 0, 0, 0, 1]
    assert m[0].tolist() == [0] * 5 + [0] * 5 + [1, 0, 0, 0, 0]      # too early: only itself, never empty
    assert bool(m.any(1).all())


def test_draft_vocabulary():
    ids = select_draft_vocab([[5, 5, 5, 7, 7, 9], [9, 9, 9, 9]], size=3, vocab_size=20, always=[1])
    assert ids.tolist() == [1, 5, 9]                     # 9 (5x) and 5 (3x) beat 7 (2x); 1 forced in
    assert coverage([[5, 9, 7, 1]], ids) == 0.75
    t2d = target_to_draft(ids, 20)
    assert t2d[9] == 2 and t2d[7] == -1
    assert select_draft_vocab([[3]], size=4, vocab_size=20).tolist() == [0, 1, 2, 3]


def test_save_load_roundtrip_and_errors(tmp_path):
    net = EagleNet(SHAPE, 10)
    save_drafter(tmp_path / "d", "eagle", {"draft_vocab": 10}, net.state_dict())
    config, state = load_drafter(tmp_path / "d", "eagle")
    assert config["kind"] == "eagle" and state["head.weight"].dtype == torch.float32
    torch.testing.assert_close(state["head.weight"], net.head.weight.detach().bfloat16().float())
    assert torch.equal(state["token_ids"], net.token_ids)
    with pytest.raises(ConfigError, match="holds a 'eagle' drafter"):
        load_drafter(tmp_path / "d", "medusa")
    (tmp_path / "e").mkdir()
    with pytest.raises(ConfigError, match="lacks config.json"):
        load_drafter(tmp_path / "e", "eagle")
    (tmp_path / "d" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(Exception, match="unreadable"):
        load_drafter(tmp_path / "d", "eagle")
