"""Shared fixtures: real services on loopback (MongoDB-wire server, HTTP fixture server), isolated settings."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES_DIR = Path(__file__).parent / "fixtures"

# Keep every test offline and away from the user's state.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
os.environ.setdefault("OPIK_TRACK_DISABLE", "true")
# Tests serve pages on 127.0.0.1: crawlers may reach loopback, and still no other private or link-local network.
os.environ.setdefault("CRAWLER_ALLOWED_NETWORKS", "127.0.0.0/8")
# ZenML reads its config path once, at first import: give the test session its own store.
os.environ.setdefault("ZENML_CONFIG_PATH", tempfile.mkdtemp(prefix="llm-twin-zenml-"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real nx-27017 MongoDB-wire server on a free loopback port for the whole test session."""
    data_dir = tmp_path_factory.mktemp("mongo")
    port = _free_port()
    binary = shutil.which("nx-27017", path=str(Path(sys.executable).parent)) or "nx-27017"
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        [
            binary,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-file",
            str(data_dir / "nx.log"),
            "--pid-file",
            str(data_dir / "nx.pid"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_port(port)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def settings(tmp_path: Path, mongo_uri: str, monkeypatch: pytest.MonkeyPatch):
    """Settings isolated to this test: own data dir, own warehouse database on the shared server."""
    from llm_engineering.settings import Settings, get_settings

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DATABASE", f"test_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("MONGODB_EMBEDDED", "false")
    monkeypatch.setenv("CRAWLER_DOMAIN_DELAY_S", "0")
    monkeypatch.setenv("CRAWLER_BACKOFF_S", "0.05")
    get_settings.cache_clear()
    value = Settings()
    yield value
    get_settings.cache_clear()


@pytest.fixture
def warehouse(settings):
    from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse

    return MongoWarehouse(settings=settings)


@pytest.fixture(scope="session")
def fixture_server() -> Iterator[str]:
    """tests/fixtures served over HTTP on 127.0.0.1 (a real server, real sockets; bench/common.py's helper)."""
    from bench.common import serve_directory

    with serve_directory(FIXTURES_DIR) as url:
        yield url
