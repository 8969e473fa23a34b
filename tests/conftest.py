import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch, request):
    """Every test gets its own empty specdec cache unless it uses the real default model."""
    if "real_model" not in request.keywords:
        monkeypatch.setenv("SPECDEC_CACHE", str(tmp_path / "specdec-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


@pytest.fixture(autouse=True)
def _threads(request):
    """Tiny models spend their time in thread hand-offs, not arithmetic: run them on one thread. The real
    default model keeps torch's default (all cores)."""
    before = torch.get_num_threads()
    if "real_model" not in request.keywords:
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
