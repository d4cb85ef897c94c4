"""Interruptions: a run killed mid-way registers nothing and resumes from its last checkpoint when re-run with
the same config and data; a run that fails after SFT registers nothing and keeps the finished stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.settings import PROJECT_ROOT
from tests.integration.training.helpers import subset_dataset, tiny_config, write_config

pytestmark = pytest.mark.slow


def wait_for_checkpoint(runs: Path, process: subprocess.Popen, timeout: float = 600) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(runs.glob("*/sft/checkpoints/checkpoint-*/trainer_state.json"))
        if found:
            time.sleep(1.0)  # let the save finish the adapter weights too
            return found[0].parent
        if process.poll() is not None:
            raise AssertionError(f"training exited ({process.returncode}) before its first checkpoint")
        time.sleep(0.5)
    raise AssertionError("no checkpoint appeared in time")


def test_killed_run_registers_nothing_and_resumes_from_its_checkpoint(train_settings, tmp_path: Path) -> None:
    from llm_engineering.infrastructure.ml.training.config import load_training_config
    from llm_engineering.infrastructure.registry import list_versions
    from llm_engineering.wiring.training import train_twin

    dataset = subset_dataset(tmp_path / "dataset", train=8, test=2)
    config_path = write_config(
        tmp_path / "training.yaml",
        tiny_config(
            sft={"max_steps": 8, "save_steps": 3, "max_length": 128, "eval": False},
            dpo={"max_steps": 2, "save_steps": 2, "max_length": 128, "eval": False},
            tracking={"comet": False},
        ),
    )
    env = {**os.environ, "DATA_DIR": str(train_settings.data_dir), "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "killed.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.train", "--config", str(config_path), "--dataset", str(dataset), "--no-zenml"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        checkpoint = wait_for_checkpoint(train_settings.data_dir / "training" / "runs", process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # no clean shutdown: like a crash or an OOM kill
        process.wait(timeout=30)
        log.close()
    assert checkpoint.name == "checkpoint-3"
    assert list_versions(train_settings.models_dir) == []  # a killed run registers nothing
    assert not (train_settings.models_dir / "llm-twin").exists() or not any(
        p.name.startswith(".staging") for p in (train_settings.models_dir / "llm-twin").iterdir()
    )

    report = train_twin(load_training_config(config_path), dataset, settings=train_settings)
    assert report.sft.resumed_from is not None and Path(report.sft.resumed_from).name.startswith("checkpoint-")
    resumed_at = int(Path(report.sft.resumed_from).name.split("-")[1])
    assert resumed_at >= 3
    assert report.sft.metrics["global_step"] == 8
    assert report.sft.metrics["session_steps"] == 8 - resumed_at  # only the missing steps were trained
    assert report.dpo is not None and report.dpo.resumed_from is None
    assert list_versions(train_settings.models_dir) == ["v0001"]
    assert not Path(report.run_dir).exists()  # cleaned after success: the next identical run trains afresh


def test_a_run_failing_after_sft_registers_nothing_and_keeps_sft(train_settings, tmp_path: Path) -> None:
    from llm_engineering.infrastructure.registry import list_versions
    from llm_engineering.wiring.training import train_twin

    dataset = subset_dataset(tmp_path / "dataset", train=4, test=2)
    # DPO's max_length is shorter than every prompt: the DPO stage fails, after SFT finished.
    config = tiny_config(
        sft={"max_steps": 2, "save_steps": 100, "max_length": 128, "eval": False},
        dpo={"max_steps": 2, "max_length": 16, "eval": False},
    )
    with pytest.raises(ConfigurationError, match=r"dpo.max_length=16 leaves no sample: every prompt is at least"):
        train_twin(config, dataset, settings=train_settings)
    assert list_versions(train_settings.models_dir) == []
    registry = train_settings.models_dir / "llm-twin"
    assert not registry.exists() or sorted(p.name for p in registry.iterdir()) == []
    runs = list((train_settings.data_dir / "training" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "sft" / "result.json").is_file()  # a fixed re-run reuses the SFT stage
    # the failed run's Comet experiment was closed and saved, not left dangling
    assert list((train_settings.data_dir / "comet").glob("*.zip"))
