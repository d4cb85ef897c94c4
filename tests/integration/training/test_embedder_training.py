"""Embedder adaptation on the sample corpus: the gate refuses a model that is not better, a better one is registered
as embedder:vN with its card, and EMBEDDING_MODEL_ID=embedder serves it (real MiniLM, real store, real trainer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.ml.embedding_training import (
    load_embedding_training_config,
    parse_embedding_training_config,
)

PROJECT_ROOT = Path(__file__).parents[3]
SAMPLE = PROJECT_ROOT / "data" / "sample"
TINY_DATASET = Path(__file__).parent / "tiny_dataset"  # questions written for the sample corpus, split by document

pytestmark = pytest.mark.slow


def test_the_shipped_config_loads_and_a_typo_names_its_key(tmp_path):
    config = load_embedding_training_config(PROJECT_ROOT / "configs" / "embedding_training.yaml")
    assert config.output.name == "embedder"
    with pytest.raises(ConfigurationError, match=r"train\.learning_rat: unknown key"):
        parse_embedding_training_config({"train": {"learning_rat": 1e-5}}, source="x.yaml")


def test_refuses_a_model_that_is_not_better_then_registers_one_that_is(settings, warehouse):
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.infrastructure.embeddings import resolve_embedding_model
    from llm_engineering.infrastructure.registry import list_versions
    from llm_engineering.wiring import Container
    from llm_engineering.wiring.embedding_training import train_embedder

    import_warehouse(warehouse, SAMPLE, show_progress=False)
    container = Container(settings)
    container.feature_engineering(show_progress=False).run("all")
    container.close()

    quick = {"seed": 7, "train": {"epochs": 2, "batch_size": 8, "learning_rate": 5e-5}}
    impossible = parse_embedding_training_config({**quick, "eval": {"min_improvement": 1.0}})
    report, registered = train_embedder(impossible, TINY_DATASET, settings)
    assert registered is None and report.registered is None
    assert "not better on the test split" in report.refused
    assert report.examples["train"]["examples"] >= 20 and report.before["questions"] >= 5
    assert list_versions(settings.models_dir, "embedder") == []
    with pytest.raises(ConfigurationError, match="no embedder is registered"):
        resolve_embedding_model(settings.model_copy(update={"embedding_model_id": "embedder"}))

    report, registered = train_embedder(parse_embedding_training_config(quick), TINY_DATASET, settings)
    assert report.after["mrr@10"] > report.before["mrr@10"], report
    assert registered is not None and report.registered == "embedder:v0001"
    version_dir = Path(registered.path)
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["dataset"]["hash"] == report.dataset["hash"]
    assert manifest["metrics"]["before"] == report.before and manifest["metrics"]["after"] == report.after
    assert report.dataset["hash"] in (version_dir / "README.md").read_text()
    for spec in ("embedder", "embedder:latest", "embedder:1", "embedder:v0001"):
        model_id, path = resolve_embedding_model(settings.model_copy(update={"embedding_model_id": spec}))
        assert (model_id, Path(path)) == ("embedder:v0001", version_dir.resolve())
    with pytest.raises(ConfigurationError, match="EMBEDDING_MODEL_ID.*v0009"):
        resolve_embedding_model(settings.model_copy(update={"embedding_model_id": "embedder:v0009"}))
