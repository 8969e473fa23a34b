import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch, request):
    """Every test gets its own empty specdec cache unless it uses the real default model."""
    if "real_model" not in request.keywords:
        monkeypatch.setenv("SPECDEC_CACHE", str(tmp_path / "specdec-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield
