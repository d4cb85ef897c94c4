"""Training fixtures: the packaged model prepared once per session, isolated DATA_DIRs that reuse it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.training.helpers import link_packaged_model, prepared_packaged_model


@pytest.fixture(scope="session")
def packaged_model_dir() -> Path:
    return prepared_packaged_model()


@pytest.fixture
def train_settings(tmp_path: Path, packaged_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Settings with their own DATA_DIR (registry, runs, Comet archives), the packaged model linked in."""
    from llm_engineering.settings import Settings, get_settings

    data_dir = tmp_path / "data"
    link_packaged_model(data_dir, packaged_model_dir)
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.delenv("COMET_API_KEY", raising=False)
    get_settings.cache_clear()
    yield Settings()
    get_settings.cache_clear()
