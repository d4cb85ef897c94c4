"""The ZenML `training` pipeline end to end (a few steps): the registry gets a version, and ZenML's Model Control
Plane gets a `llm-twin` model version named after it, with metrics/dataset/hyperparameter metadata and the
run's artifacts linked (the dashboard's lineage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.training.helpers import subset_dataset, tiny_config

pytestmark = pytest.mark.slow


def test_training_pipeline_registers_a_zenml_model_version(train_settings, tmp_path: Path) -> None:
    from zenml.client import Client

    from tools.train import run_training

    dataset = subset_dataset(tmp_path / "dataset", train=4, test=2)
    config = tiny_config(
        sft={"max_steps": 2, "save_steps": 100, "max_length": 160, "eval": False},
        dpo={"max_steps": 2, "save_steps": 100, "max_length": 160, "eval": True},
    )
    report, title = run_training(train_settings, config, dataset, max_steps=None, use_zenml=True)
    assert title.startswith("Training run training-")
    assert report.registered is not None and report.registered.version == "v0001"
    assert Path(report.model_path) == train_settings.models_dir / "llm-twin" / "v0001"

    client = Client()
    # Named after the registry version (other tests of this session may have taken "v0001" in the shared store:
    # then it is "v0001-<number>"); the manifest says which.
    manifest = json.loads((Path(report.model_path) / "manifest.json").read_text())
    zenml_name = manifest["zenml"]["name"]
    assert zenml_name == "v0001" or zenml_name.startswith("v0001-")
    version = client.get_model_version("llm-twin", zenml_name)
    assert "v0001" in [tag.name for tag in version.tags]
    metadata = version.run_metadata
    assert metadata["registry_version"] == "v0001"
    assert metadata["dataset_hash"] == report.dataset.hash
    assert metadata["model_path"] == report.model_path
    assert "dpo/eval_rewards_accuracies" in metadata["metrics"]
    linked = {artifact.name for artifact in client.list_artifact_versions(model_version_id=version.id, size=50)}
    assert {"training_run", "sft_result", "dpo_result", "training_report"} <= linked
    runs = version.pipeline_run_ids if hasattr(version, "pipeline_run_ids") else None
    assert runs is None or len(runs) == 1
    assert manifest["zenml"]["model"] == "llm-twin"  # the filesystem registry remembers the ZenML side
