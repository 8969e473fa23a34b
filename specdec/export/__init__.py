"""Trained drafters in the formats other serving engines load (specdec export)."""
