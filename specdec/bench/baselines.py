"""Peers in the same run: Hugging Face transformers `generate()` on the same weights as the native target.

``hf_vanilla``: plain greedy (or sampled) generate; ``hf_pld``: prompt lookup (``prompt_lookup_num_tokens=10``);
``hf_assisted``: assisted generation with ``--assistant MODEL`` as draft model (same tokenizer). Stopping matches
the native engine: at most max_new_tokens, no minimum, stop at (and drop) the first EOS token.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from specdec.bench.measure import Measurement
from specdec.config import SamplingParams
from specdec.errors import ConfigError

BASELINES = ("hf_vanilla", "hf_pld", "hf_assisted")
PLD_TOKENS = 10


def hf_dir_of(model) -> Path:
    """The Hugging Face style directory a LoadedModel was loaded from (converted one for registry/GGUF)."""
    path = model.info.get("hf_dir") or model.source
    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"model {model.name!r} has no Hugging Face directory to load for the transformers "
                          f"baselines; accepted: a model loaded with specdec.models.load.load_model")
    return Path(path)


def load_transformers(model, dtype: torch.dtype = torch.float32):
    import transformers
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir_of(model)), dtype=dtype)
    return hf.to(model.runtime.device).eval()


class HFRunner:
    """One transformers baseline; `generate` has the NativeRunner signature."""

    def __init__(self, hf_model, eos_token_ids: set[int], kind: str, assistant=None):
        self.model, self.eos, self.kind, self.assistant = hf_model, set(eos_token_ids), kind, assistant

    def generate(self, prompt_ids: list[int], max_new_tokens: int, sampling: SamplingParams,
                 learn: bool = True) -> Measurement:
        """learn: part of the runner interface (transformers learns nothing from outputs)."""
        ids = torch.tensor([prompt_ids], device=self.model.device)              # [1, prompt]
        extra = {"assistant_model": self.assistant} if self.assistant is not None else {}
        with torch.random.fork_rng(devices=[]):          # transformers samples from the global RNG: seed a copy
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            t0 = time.perf_counter()
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids),
                                      generation_config=self._config(max_new_tokens, sampling), **extra)
            seconds = time.perf_counter() - t0
        tokens, finish = cut_at_eos(out[0, len(prompt_ids):].tolist(), self.eos)
        return Measurement(tokens, seconds, prompt_tokens=len(prompt_ids), finish_reason=finish)

    def _config(self, max_new_tokens: int, sampling: SamplingParams):
        from transformers import GenerationConfig
        eos = sorted(self.eos)
        kw = dict(max_new_tokens=max_new_tokens, min_new_tokens=0, eos_token_id=eos or None,
                  pad_token_id=eos[0] if eos else None, do_sample=not sampling.greedy)
        if not sampling.greedy:
            kw.update(temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
                      min_p=sampling.min_p or None)
        if self.kind == "hf_pld":
            kw["prompt_lookup_num_tokens"] = PLD_TOKENS
        return GenerationConfig(**kw)


def cut_at_eos(tokens: list[int], eos: set[int]) -> tuple[list[int], str]:
    """New tokens up to (without) the first EOS, and the finish reason ("stop" or "length")."""
    for i, tok in enumerate(tokens):
        if tok in eos:
            return tokens[:i], "stop"
    return tokens, "length"


def make_baselines(names: list[str], target, *, assistant: str | None = None, dtype: str = "float32",
                   device: str = "cpu") -> tuple[dict[str, HFRunner], list[str]]:
    """-> ({name: runner}, notes about skipped baselines). One transformers copy of the target serves all."""
    from specdec.models.load import DTYPES
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise ConfigError(f"baseline {bad[0]!r} is unknown; accepted: {', '.join(BASELINES)}")
    runners, notes = {}, []
    if not names:
        return runners, notes
    hf = load_transformers(target, DTYPES[dtype])
    for name in names:
        if name == "hf_assisted" and assistant is None:
            notes.append("hf_assisted skipped: it needs --assistant MODEL (a smaller model with the same tokenizer)")
            continue
        helper = _load_assistant(assistant, target, DTYPES[dtype], device) if name == "hf_assisted" else None
        runners[name] = HFRunner(hf, target.eos_token_ids, name, helper)
    return runners, notes


def _load_assistant(name: str, target, dtype: torch.dtype, device: str):
    from specdec.models.load import load_model
    helper = load_model(name, device=device, quiet=True)
    if helper.tokenizer is None or helper.tokenizer.get_vocab() != target.tokenizer.get_vocab():
        raise ConfigError(f"assistant model {name!r} does not share the target's tokenizer; accepted: a draft "
                          f"model with the same vocabulary as {target.name!r}")
    return load_transformers(helper, dtype)
