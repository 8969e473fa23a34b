"""The decoder shape the native runtime needs, read from a Hugging Face config or GGUF metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from specdec.errors import ModelFileError

# Hugging Face architectures the native runtime implements (Llama family). Others go to the HF adapter.
NATIVE_ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "MistralForCausalLM": "mistral"}


@dataclass(frozen=True)
class DecoderConfig:
    arch: str                       # "llama", "qwen2" or "mistral"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = field(default=None, hash=False)   # {"rope_type": "linear"|"llama3", ...}
    rms_norm_eps: float = 1e-6
    max_context: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False    # bias on q, k, v projections (Qwen2)
    sliding_window: int | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @staticmethod
    def from_dict(d: dict) -> DecoderConfig:
        return DecoderConfig(**d)

    @staticmethod
    def from_hf(cfg: Any) -> DecoderConfig:
        """From a transformers PretrainedConfig (v4 or v5 field names)."""
        archs = list(getattr(cfg, "architectures", None) or [])
        model_type = getattr(cfg, "model_type", "")
        arch = next((NATIVE_ARCHITECTURES[a] for a in archs if a in NATIVE_ARCHITECTURES), None)
        if arch is None and model_type in ("llama", "qwen2", "mistral"):
            arch = model_type
        if arch is None:
            raise ModelFileError(f"architecture {archs or model_type!r} is not native; "
                                 f"native: {sorted(NATIVE_ARCHITECTURES)}")
        rope = dict(getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {})
        theta = rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        scaling = None if rope_type == "default" else {k: v for k, v in rope.items() if k != "rope_theta"}
        heads = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        window = getattr(cfg, "sliding_window", None) if getattr(cfg, "use_sliding_window", True) else None
        return DecoderConfig(
            arch=arch, vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size, num_layers=cfg.num_hidden_layers, num_heads=heads,
            num_kv_heads=getattr(cfg, "num_key_value_heads", None) or heads, head_dim=head_dim,
            rope_theta=float(theta), rope_scaling=scaling, rms_norm_eps=cfg.rms_norm_eps,
            max_context=cfg.max_position_embeddings,
            tie_word_embeddings=bool(getattr(cfg, "tie_word_embeddings", False)),
            attention_bias=arch == "qwen2" or bool(getattr(cfg, "attention_bias", False)),
            sliding_window=window if arch != "llama" else None,
        )
