"""`poe local-zenml-server-up` serves the ZenML dashboard offline on 127.0.0.1, then `down` stops it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llm_engineering.infrastructure.local_services import find_free_port, port_is_open

PROJECT_ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_local_zenml_dashboard_up_and_down(tmp_path):
    port = find_free_port()
    env = {**os.environ, "ZENML_CONFIG_PATH": str(tmp_path / "zenml"), "DATA_DIR": str(tmp_path / "data")}

    def tool(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tools.zenml_server", *args], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=240)  # fmt: skip

    try:
        up = tool("up", "--port", str(port))
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health", timeout=10).text.strip('"').lower() == "ok"
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()  # bundled dashboard, no internet
        token = httpx.post(f"{base}/api/v1/login", data={"username": "default", "password": ""}, timeout=10)
        me = httpx.get(f"{base}/api/v1/current-user", timeout=10,
                       headers={"Authorization": f"Bearer {token.json()['access_token']}"})  # fmt: skip
        assert me.json()["metadata"]["user_metadata"]["finished_onboarding_survey"] is True
    finally:
        down = tool("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not port_is_open("127.0.0.1", port)
