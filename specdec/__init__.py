"""specdec: speculative decoding behind one interface."""

__version__ = "0.1.0"
