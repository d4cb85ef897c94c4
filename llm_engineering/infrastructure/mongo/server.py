"""The embedded MongoDB-wire server (nx-27017 over SQLite), started on demand on loopback."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

from loguru import logger
from pymongo.uri_parser import parse_uri

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.local_services import LocalService
from llm_engineering.settings import Settings

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def uri_host_port(uri: str) -> tuple[str, int]:
    try:
        nodes = parse_uri(uri)["nodelist"]
    except Exception as exc:  # pymongo raises several error types for bad URIs
        raise ConfigurationError(f"MONGODB_URI is not a valid MongoDB URI ({uri!r}): {exc}") from exc
    if not nodes:
        raise ConfigurationError(f"MONGODB_URI names no host: {uri!r}")
    return nodes[0]


def embedded_server(settings: Settings) -> LocalService | None:
    """The embedded server for the configured URI, or None when the URI is not a loopback single host."""
    if urlsplit(settings.mongodb_uri).scheme != "mongodb":
        return None
    host, port = uri_host_port(settings.mongodb_uri)
    if host not in LOOPBACK_HOSTS:
        return None
    data_dir: Path = settings.warehouse_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    nx_binary = Path(sys.executable).with_name("nx-27017")
    command = [str(nx_binary)] if nx_binary.exists() else [sys.executable, "-m", "nx_27017"]
    command += [
        "--host",
        "127.0.0.1" if host == "localhost" else host,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--log-file",
        str(settings.logs_dir / "nx-27017.internal.log"),
        "--pid-file",
        str(settings.data_dir / "run" / "nx-27017.internal.pid"),
    ]
    return LocalService(
        name="mongodb-embedded",
        host=host,
        port=port,
        command=command,
        state_dir=settings.data_dir,
        startup_timeout_s=30.0,
    )


def ensure_warehouse_server(settings: Settings) -> None:
    """Start the embedded server if the URI is loopback, nothing listens there and embedding is allowed."""
    if not settings.mongodb_embedded:
        return
    server = embedded_server(settings)
    if server is None or server.is_running():
        return
    logger.info(
        f"Nothing listens on {server.host}:{server.port}: starting the embedded MongoDB-wire server "
        f"(nx-27017, data in {settings.warehouse_dir}). Set MONGODB_EMBEDDED=false to disable."
    )
    server.start()
