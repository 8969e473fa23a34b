"""Resolve a model name (registry entry, .gguf file, Hugging Face directory or hub id) and load it."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from specdec.errors import ConfigError, ModelFileError, ModelNotFoundError
from specdec.models.cache_dir import cache_root, sha256_memo
from specdec.models.config import NATIVE_ARCHITECTURES, DecoderConfig
from specdec.models.registry import REGISTRY, RegistryEntry
from specdec.models.runtime import DecoderRuntime

# Weight and activation precisions by name. "q4": 4-bit projections, float32 activations (specdec.models.quant;
# native runtime on CPU); a transformers copy of a q4 model (the bench baselines) runs in float32.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "q4": torch.float32}
QUANT = {"q4": "q4"}
ACCEPTED_MODELS = ("a registry name (see `specdec models`), a .gguf file, a local Hugging Face model directory "
                   "(config.json + safetensors) or a reachable hub id like org/name")


@dataclass
class LoadedModel:
    name: str
    runtime: DecoderRuntime          # native LlamaRuntime or the transformers adapter
    tokenizer: object                # a transformers tokenizer
    eos_token_ids: set[int]
    source: str                      # file or directory the weights came from
    load_seconds: float = 0.0
    info: dict = field(default_factory=dict)

    def encode(self, prompt: str | list[dict], chat: bool = True) -> list[int]:
        """Token ids of a prompt; with chat=True the model's own chat template wraps it (a string is one user turn)."""
        if chat and getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not isinstance(prompt, str):
            raise ConfigError("a list of chat messages needs a model with a chat template; pass plain text")
        return self.tokenizer(prompt)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        if self.tokenizer is None:          # a model driven with raw token ids
            return " ".join(map(str, ids))
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def _parse_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device={device!r} is not a device; accepted: cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available here; accepted: cpu")
    return dev


def load_model(name: str, *, dtype: str = "float32", device: str = "cpu", quiet: bool = False,
               cuda_graphs: bool = False) -> LoadedModel:
    """cuda_graphs: passes of one sequence's few new tokens run through the fixed-shape pass captured as CUDA
    graphs (specdec/models/static_step.py; --device cuda, dense weights)."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r} is not supported; accepted: {', '.join(DTYPES)}")
    dev = _parse_device(device)
    if cuda_graphs and dev.type != "cuda":
        raise ConfigError(f"CUDA graphs need a CUDA device, got device={device!r}; accepted: cuda, cuda:N")
    if cuda_graphs and dtype == "q4":
        raise ConfigError("CUDA graphs run dense weights only, got dtype='q4'; accepted: float32, bfloat16, float16")
    t0 = time.perf_counter()
    model_dir, source, info = _resolve(name, quiet)
    model = load_hf_dir(model_dir, dtype=DTYPES[dtype], device=dev, name=name, quant=QUANT.get(dtype))
    model.source, model.info = source, {**info, **model.info}
    model.info["hf_dir"] = str(model_dir)    # the Hugging Face style directory the weights were read from
    if cuda_graphs:
        model.runtime.use_static_step()
    model.load_seconds = time.perf_counter() - t0
    return model


def _resolve(name: str, quiet: bool) -> tuple[Path, str, dict]:
    """-> (Hugging Face style model directory, source description, info)."""
    if name in REGISTRY:
        return _from_registry(REGISTRY[name], quiet)
    path = Path(name).expanduser()
    if path.suffix == ".gguf" or path.is_file():
        if not path.is_file():
            raise ModelNotFoundError(f"model file {name!r} does not exist; accepted: {ACCEPTED_MODELS}")
        return _converted(path, sha256_memo(path), quiet), str(path), {"format": "gguf"}
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelFileError(f"directory {name!r} has no config.json; accepted: {ACCEPTED_MODELS}")
        return path, str(path), {"format": "hf"}
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return _from_hub(name), f"hub:{name}", {"format": "hf"}
    known = ", ".join(sorted(REGISTRY))
    raise ModelNotFoundError(f"unknown model {name!r}; registry names: {known}; or {ACCEPTED_MODELS}")


def _from_registry(entry: RegistryEntry, quiet: bool) -> tuple[Path, str, dict]:
    from specdec.models.fetch import cached_path, is_cached, pull
    converted = cache_root() / "converted" / entry.sha256
    info = {"format": "gguf", "sha256": entry.sha256, "registry": entry.name}
    if (converted / "model.safetensors").is_file() and is_cached(entry):
        return converted, str(cached_path(entry)), info
    src = pull(entry, quiet=quiet)   # downloads if missing; verifies size and sha256
    return _converted(src, entry.sha256, quiet), str(src), info


def _converted(gguf_path: Path, digest: str, quiet: bool) -> Path:
    from specdec.models.gguf_convert import convert_gguf
    out = cache_root() / "converted" / digest
    if not (out / "model.safetensors").is_file():
        convert_gguf(gguf_path, out, quiet=quiet)
    return out


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "tokenizer*",
                                                                "*.model", "*.txt", "*.jinja"]))
    except Exception as e:
        raise ModelNotFoundError(f"could not fetch hub model {repo_id!r} ({type(e).__name__}); "
                                 f"accepted: {ACCEPTED_MODELS}") from None


def load_hf_dir(path: Path, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                name: str | None = None, quant: str | None = None) -> LoadedModel:
    """Load a Hugging Face style model directory: native runtime for the Llama family, else the adapter."""
    import transformers
    try:
        hf_config = transformers.AutoConfig.from_pretrained(str(path))
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as e:
        raise ModelFileError(f"{path} is not a loadable model directory ({e}); accepted: {ACCEPTED_MODELS}") from None
    archs = set(getattr(hf_config, "architectures", None) or [])
    shards = sorted(Path(path).glob("*.safetensors"))
    if archs & set(NATIVE_ARCHITECTURES) and shards:
        from safetensors.torch import load_file

        from specdec.models.llama import LlamaRuntime
        state = {}
        try:
            for shard in shards:
                state.update(load_file(str(shard)))
        except Exception as e:
            raise ModelFileError(f"{shard} is not a readable safetensors file ({e})") from None
        runtime = LlamaRuntime(DecoderConfig.from_hf(hf_config), state, dtype=dtype, device=device,
                               quant=quant)
        kind = "native"
    elif quant:
        raise ConfigError(f"dtype={quant!r} needs the native runtime (architectures {', '.join(NATIVE_ARCHITECTURES)} "
                          f"with safetensors weights); {path} has {sorted(archs) or 'no architectures'}. "
                          f"Accepted for it: float32, bfloat16, float16")
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device)
        from specdec.models.hf_adapter import HFRuntime
        runtime = HFRuntime(model, max_context=getattr(hf_config, "max_position_embeddings", 2048))
        kind = "transformers"
    return LoadedModel(name=name or str(path), runtime=runtime, tokenizer=tokenizer,
                       eos_token_ids=_eos_ids(path, hf_config, tokenizer), source=str(path),
                       info={"runtime": kind})


def _eos_ids(path: Path, hf_config, tokenizer) -> set[int]:
    ids: set[int] = set()
    candidates = [getattr(tokenizer, "eos_token_id", None), getattr(hf_config, "eos_token_id", None)]
    gen = Path(path) / "generation_config.json"
    if gen.is_file():
        candidates.append(json.loads(gen.read_text()).get("eos_token_id"))
    for c in candidates:
        if isinstance(c, int):
            ids.add(c)
        elif isinstance(c, list):
            ids.update(int(i) for i in c)
    return ids
