"""`poe local-infrastructure-up/-status/-down` manage the embedded warehouse server across commands, and a
warehouse that cannot be reached gives an actionable error instead of a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from llm_engineering.infrastructure.local_services import find_free_port, port_is_open

PROJECT_ROOT = Path(__file__).parents[2]


def _tool(env: dict[str, str], module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=180)  # fmt: skip


def test_warehouse_server_outlives_the_command_that_started_it(tmp_path):
    port = find_free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "MONGODB_URI": f"mongodb://127.0.0.1:{port}",
           "LLM_BASE_URL": f"http://127.0.0.1:{find_free_port()}/v1"}  # fmt: skip
    try:
        up = _tool(env, "tools.local_infra", "up", "--no-llm")
        assert up.returncode == 0, up.stdout + up.stderr
        assert port_is_open("127.0.0.1", port)  # still serving after `up` returned

        status = _tool(env, "tools.local_infra", "status")
        assert re.search(
            rf"warehouse \(MongoDB wire\): running \(pid \d+, process group \d+\) on 127\.0\.0\.1:{port}\b",
            status.stdout,
        ), status.stdout
        assert "LLM (vLLM): stopped" in status.stdout

        imported = _tool(env, "tools.data_warehouse", "import", "--data-dir", str(PROJECT_ROOT / "data" / "sample"))
        assert imported.returncode == 0, imported.stderr
        assert "starting the embedded" not in imported.stderr  # it used the running server
    finally:
        down = _tool(env, "tools.local_infra", "down")
    assert down.returncode == 0
    assert "warehouse (MongoDB wire): stopped" in down.stdout
    assert not port_is_open("127.0.0.1", port)
    assert (tmp_path / "data" / "warehouse" / "llm_twin.db").exists()  # the data stays on disk


def test_unreachable_warehouse_is_a_clear_error(tmp_path):
    env = {**os.environ, "DATA_DIR": str(tmp_path), "MONGODB_URI": f"mongodb://127.0.0.1:{find_free_port()}",
           "MONGODB_EMBEDDED": "false", "MONGODB_TIMEOUT_MS": "500"}  # fmt: skip
    result = _tool(env, "tools.data_warehouse", "export", "--data-dir", str(tmp_path / "out"))
    assert result.returncode != 0
    assert result.stderr.startswith("Error: cannot reach the data warehouse at MONGODB_URI=")
    assert "poe local-infrastructure-up" in result.stderr
    assert "Traceback" not in result.stderr
