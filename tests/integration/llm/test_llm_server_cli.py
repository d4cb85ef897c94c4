"""`python -m tools.llm_server` and `tools.prepare_models` say what to do when something is missing (fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from llm_engineering.infrastructure.local_services import find_free_port
from llm_engineering.settings import PROJECT_ROOT


def _run(args: list[str], tmp_path, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "DATA_DIR": str(tmp_path / "data"),
        "LLM_BASE_URL": f"http://127.0.0.1:{find_free_port()}/v1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_up_without_a_prepared_model_names_the_fix(tmp_path):
    run = _run(["tools.llm_server", "up"], tmp_path)
    assert run.returncode == 1
    assert "poe prepare-models" in run.stderr


def test_up_without_the_vllm_environment_names_the_install_script(tmp_path):
    run = _run(["tools.llm_server", "up"], tmp_path, VLLM_PYTHON=str(tmp_path / "nope" / "python"))
    assert run.returncode == 1
    assert "tools/install_vllm_cpu.sh" in run.stderr


def test_status_and_down_work_when_nothing_runs(tmp_path):
    status = _run(["tools.llm_server", "status"], tmp_path)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["ready"] is False and data["managed_pid"] is None and "prepare-models" in data["problem"]
    down = _run(["tools.llm_server", "down"], tmp_path)
    assert down.returncode == 0 and "not running" in down.stdout


def test_remote_endpoint_is_never_started(tmp_path):
    from llm_engineering.infrastructure.ml.inference_engine import llm_server_service, start_llm_server
    from llm_engineering.settings import Settings

    settings = Settings(data_dir=tmp_path, llm_base_url="http://10.255.255.1:8000/v1")
    assert llm_server_service(settings) is None
    assert start_llm_server(settings) is False


def test_a_server_that_dies_on_start_is_reported_with_its_log(tmp_path):
    import pytest

    from llm_engineering.domain.errors import ServiceUnavailableError
    from llm_engineering.infrastructure.ml.inference_engine import llm_server_service, start_llm_server
    from llm_engineering.settings import Settings

    settings = Settings(
        data_dir=tmp_path,
        llm_base_url=f"http://127.0.0.1:{find_free_port()}/v1",
        llm_model_id=str(tmp_path),  # any existing local path is served as is
        vllm_python="/bin/false",  # starts and exits 1 at once, like a broken vLLM install
    )
    with pytest.raises(ServiceUnavailableError, match="exited with code 1"):
        start_llm_server(settings)
    assert llm_server_service(settings).managed_pid() is None  # nothing left behind
