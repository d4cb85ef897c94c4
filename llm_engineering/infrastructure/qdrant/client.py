"""One lazily created qdrant-client per target: a server URL, or a local-mode path (same API)."""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING

from llm_engineering.domain.errors import ServiceUnavailableError
from llm_engineering.settings import Settings

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

_clients: dict[str, QdrantClient] = {}
_lock = threading.Lock()


def qdrant_target(settings: Settings) -> str:
    return settings.qdrant_url or str(settings.qdrant_local_path.resolve())


def get_qdrant_client(settings: Settings) -> QdrantClient:
    """The process-wide client for these settings. Local mode locks its folder: one process per path."""
    from qdrant_client import QdrantClient

    key = qdrant_target(settings)
    with _lock:
        client = _clients.get(key)
        if client is not None:
            return client
        if settings.qdrant_url:
            api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
            client = QdrantClient(url=settings.qdrant_url, api_key=api_key)
            try:
                client.get_collections()
            except Exception as exc:  # noqa: BLE001 - any transport error means the same to the user
                raise ServiceUnavailableError(
                    f"Cannot reach Qdrant at QDRANT_URL={settings.qdrant_url!r}: {exc}. Start the server, or unset "
                    "QDRANT_URL to use local mode under QDRANT_PATH / DATA_DIR."
                ) from exc
        else:
            path = settings.qdrant_local_path
            path.mkdir(parents=True, exist_ok=True)
            try:
                client = QdrantClient(path=str(path))
            except RuntimeError as exc:
                if "already accessed" not in str(exc):
                    raise
                raise ServiceUnavailableError(
                    f"The local vector store at {path} (QDRANT_PATH / DATA_DIR) is open in another process; "
                    "qdrant-client local mode allows only ONE process per path. Stop the other process (e.g. the "
                    "RAG service or a running pipeline), or run a Qdrant server and set QDRANT_URL so several "
                    "processes can share it."
                ) from exc
        if not _clients:
            atexit.register(close_qdrant_clients)  # release the folder lock before interpreter teardown
        _clients[key] = client
        return client


def close_qdrant_clients(settings: Settings | None = None) -> None:
    """Close one client (or all): releases the local-mode folder lock for other processes."""
    with _lock:
        keys = [qdrant_target(settings)] if settings is not None else list(_clients)
        for key in keys:
            client = _clients.pop(key, None)
            if client is not None:
                client.close()
