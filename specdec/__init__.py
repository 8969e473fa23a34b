"""specdec: speculative decoding behind one interface.

    from specdec import SamplingParams, SpeculativeDecoder, load_model, make_drafter
    target = load_model("smollm2-135m")
    decoder = SpeculativeDecoder(target, make_drafter("pld", target))
    result = decoder.generate("Summarize: ...", max_new_tokens=128, sampling=SamplingParams())
    print(result.text, result.stats.tokens_per_s, result.stats.mean_accepted_length)
"""

__version__ = "0.1.0"

_EXPORTS = {
    "SamplingParams": "specdec.config", "SpeculativeDecoder": "specdec.engine", "GenerationResult": "specdec.engine",
    "load_model": "specdec.models.load", "make_drafter": "specdec.drafters", "Draft": "specdec.types",
    "SpecdecError": "specdec.errors", "Engine": "specdec.engine", "Request": "specdec.engine",
}


def __getattr__(name: str):
    """Import on first use, so `specdec --help` and error messages do not wait for torch."""
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'specdec' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
