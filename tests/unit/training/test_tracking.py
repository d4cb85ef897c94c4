"""Comet tracking with no key and no network: an offline archive on disk, never an error."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from llm_engineering.infrastructure.tracking.training import NullTracker, start_tracking


@pytest.fixture
def comet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # start_tracking sets these for the transformers callback: restore them after the test
    for name in ("COMET_START_ONLINE", "COMET_OFFLINE_DIRECTORY", "COMET_PROJECT_NAME", "COMET_LOG_ASSETS",
                 "COMET_AUTO_LOG_GIT_PATCH", "COMET_ERROR_TRACKING_ENABLE"):  # fmt: skip
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.delenv("COMET_API_KEY", raising=False)


def test_offline_experiment_writes_an_archive(tmp_path: Path, comet_env) -> None:
    tracker = start_tracking(enabled=True, data_dir=tmp_path, project="llm-twin-test", run_name="unit")
    assert tracker.mode == "offline" and tracker.report_to == "comet_ml"
    import os

    assert os.environ["COMET_ERROR_TRACKING_ENABLE"] == "false"  # no Sentry reports over the network
    tracker.log_parameters({"lora": {"r": 8}}, prefix="config")
    with tracker.stage("sft"):
        tracker.log_metrics({"loss": 1.5, "note": "not a number"}, step=1)
    tracker.log_text_asset("# card", "model_card.md")
    tracker.end()
    archive = Path(tracker.summary()["archive"])
    assert archive.parent == tmp_path / "comet" and archive.suffix == ".zip"
    with zipfile.ZipFile(archive) as bundle:
        messages = bundle.read("messages.json").decode()
    assert '"loss"' in messages and '"sft"' in messages and "model_card.md" in messages


def test_disabled_tracking_is_a_no_op(tmp_path: Path) -> None:
    tracker = start_tracking(enabled=False, data_dir=tmp_path, project="p", run_name="r")
    assert isinstance(tracker, NullTracker) and tracker.report_to == "none"
    with tracker.stage("sft"):
        tracker.log_metrics({"loss": 1.0})
    tracker.end()
    assert not (tmp_path / "comet").exists()
