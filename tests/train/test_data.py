"""Training data on the device: batches gathered from a SequenceStore equal batches built sequence by sequence,
and features extracted in right-padded multi-sequence passes equal those of one pass per sequence."""

import pytest
import torch

from specdec.train.batches import SequenceStore, batch_plan, crop, reference_batch
from specdec.train.features import Sequence, extract_features, load_features
from tests.tiny import tiny_target


def _sequences(n: int, hidden: int, extra_layers: int, seed: int = 0) -> list[Sequence]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        t = int(torch.randint(2, 40, (1,), generator=g))
        prompt = int(torch.randint(1, t, (1,), generator=g))
        extras = (torch.randn(t, extra_layers, hidden, generator=g).half() if extra_layers else None)
        out.append(Sequence(torch.randint(1, 100, (t,), generator=g), torch.randn(t, hidden, generator=g).half(),
                            prompt, extras))
    return out


@pytest.mark.parametrize("keep_prompt, extra_layers", [(None, 0), (5, 0), (8, 2)])
def test_store_batches_equal_batches_built_sequence_by_sequence(keep_prompt, extra_layers):
    seqs = _sequences(30, 16, extra_layers)
    store = SequenceStore(seqs, keep_prompt, "cpu")
    assert store.lengths == [len(crop(s, keep_prompt).tokens) for s in seqs]
    plan = batch_plan(store.lengths, 96, seed=3, epoch=1)
    assert sorted(i for b in plan for i in b) == list(range(30))
    for indices in plan + [[29, 0, 7]]:
        got = store.batch(indices)
        want = reference_batch([seqs[i] for i in indices], keep_prompt)
        assert torch.equal(got.tokens, want.tokens) and torch.equal(got.valid, want.valid)
        assert torch.equal(got.prompt_lens, want.prompt_lens)
        assert got.features.dtype == torch.float32 and torch.equal(got.features, want.features)
        assert (got.extras is None) == (want.extras is None)
        if want.extras is not None:
            assert torch.equal(got.extras, want.extras)


@pytest.mark.parametrize("runtime, extra", [("native", ()), ("native", (0,)), ("transformers", (0,))],
                         ids=["native", "native-fused", "transformers-fused"])
def test_batched_extraction_matches_one_sequence_per_pass(runtime, extra, tmp_path):
    target, hf = tiny_target(vocab=32, layers=2, hidden=32, seed=7)
    if runtime == "transformers":
        from specdec.models.hf_adapter import HFRuntime
        target.runtime = HFRuntime(hf.to(target.runtime.device), max_context=256)
    g = torch.Generator().manual_seed(1)
    records = [{"prompt_ids": torch.randint(1, 32, (int(torch.randint(2, 9, (1,), generator=g)),),
                                            generator=g).tolist(),
                "response_ids": torch.randint(1, 32, (int(torch.randint(1, 25, (1,), generator=g)),),
                                              generator=g).tolist()} for _ in range(11)]
    one = extract_features(target, records, tmp_path / "one", shard_size=4, extra_layers=extra, batch_tokens=1)
    many = extract_features(target, records, tmp_path / "many", shard_size=4, extra_layers=extra, batch_tokens=64)
    assert len(one) == len(many) == len(records)
    for r, a, b in zip(records, one, many):
        assert a.tokens.tolist() == b.tokens.tolist() == r["prompt_ids"] + r["response_ids"]
        assert a.prompt_len == b.prompt_len == len(r["prompt_ids"])
        torch.testing.assert_close(b.features.float(), a.features.float(), atol=2e-3, rtol=2e-3)
        if extra:
            assert b.extras.shape == (len(b.tokens), 1, 32)
            torch.testing.assert_close(b.extras.float(), a.extras.float(), atol=2e-3, rtol=2e-3)
    reread = load_features(tmp_path / "many")            # what a resumed run reads back
    assert [s.tokens.tolist() for s in reread] == [s.tokens.tolist() for s in many]
