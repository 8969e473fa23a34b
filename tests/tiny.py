"""Tiny randomly initialised models and a tiny tokenizer, built in-process for tests."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from specdec.models.config import DecoderConfig
from specdec.models.llama import LlamaRuntime
from specdec.models.load import LoadedModel

# SPECDEC_TEST_DEVICE=cuda runs the tiny targets (and so the engine, drafters and verifiers under test) on a GPU.
TEST_DEVICE = os.environ.get("SPECDEC_TEST_DEVICE", "cpu")

CONFIG_CLASSES = {"llama": "LlamaConfig", "qwen2": "Qwen2Config", "mistral": "MistralConfig"}


def tiny_hf_model(arch: str = "llama", vocab: int = 64, layers: int = 2, hidden: int = 32, heads: int = 4,
                  kv_heads: int = 2, seed: int = 0, context: int = 256, tie: bool = False, scale: float = 1.0,
                  **extra):
    """A transformers causal LM with random weights (biases randomised too, so Qwen2's qkv bias matters)."""
    import transformers
    cls = getattr(transformers, CONFIG_CLASSES[arch])
    cfg = cls(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
              num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=context,
              tie_word_embeddings=tie, bos_token_id=0, eos_token_id=1, pad_token_id=1, **extra)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
            elif name.endswith("weight") and p.dim() == 2:
                p.mul_(scale)   # a larger scale gives peakier (less uniform) next-token distributions
    return model


def tiny_target(arch: str = "llama", eos: set[int] | None = None, quant: str | None = None,
                **kw) -> tuple[LoadedModel, object]:
    """(LoadedModel with the native runtime and no tokenizer, the transformers model it was built from).

    quant="q4": 4-bit projections (CPU only; hidden a multiple of 32)."""
    hf = tiny_hf_model(arch, **kw)
    rt = LlamaRuntime(DecoderConfig.from_hf(hf.config), hf.state_dict(), device="cpu" if quant else TEST_DEVICE,
                      quant=quant)
    return LoadedModel(name=f"tiny-{arch}", runtime=rt, tokenizer=None, eos_token_ids=eos or set(),
                       source="memory"), hf


def tiny_tokenizer(vocab: int = 300):
    """A byte-level BPE tokenizer trained on a few sentences, with a ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>", "<|im_end|>", "<|im_start|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = ["the quick brown fox jumps over the lazy dog", "hello world, what is the capital of France?",
            "speculative decoding drafts tokens and the target verifies them"] * 20
    tok.train_from_iterator(text, trainer)
    return wrap_tokenizer(tok)


def wrap_tokenizer(tok):
    """A `tokenizers.Tokenizer` with tiny_tokenizer's special tokens as a transformers tokenizer with a ChatML
    chat template."""
    from transformers import PreTrainedTokenizerFast
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return fast


def write_hf_dir(path: Path, arch: str = "llama", **kw) -> tuple[Path, object]:
    """Write a tiny model directory (config.json, model.safetensors, tokenizer) as a user would have it."""
    tok = tiny_tokenizer()
    model = tiny_hf_model(arch, vocab=len(tok), context=512, **kw)
    model.config.eos_token_id = tok.eos_token_id
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path, model
