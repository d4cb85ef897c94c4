"""The template-identity tests use the real packaged tokenizer (prepared once, cached across sessions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.training.helpers import TINY_DATASET, prepared_packaged_model


@pytest.fixture(scope="session")
def packaged_model_dir() -> Path:
    return prepared_packaged_model()


@pytest.fixture
def tiny_dataset() -> Path:
    return TINY_DATASET
