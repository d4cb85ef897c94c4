"""Vector-store adapters behind `ports.FeatureStore`, chosen by configuration:

- `QDRANT_URL` set: a Qdrant server through qdrant-client (`QdrantFeatureStore`; what users scale out to);
- else the embedded default, Qdrant's in-process engine (`EdgeFeatureStore`, qdrant-edge-py) under
  DATA_DIR/qdrant-edge: ~1 ms hybrid queries, one writer and any number of reader processes at once;
- `VECTOR_STORE=qdrant-local` (or an explicit `QDRANT_PATH`): qdrant-client's local mode (brute force in
  Python, one process per folder), kept so the qdrant-client adapter is tested without a server.

Both adapters pass tests/integration/test_vector_store_contract.py.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from llm_engineering.domain.errors import ConfigurationError

from .client import close_qdrant_clients as _close_clients
from .client import get_qdrant_client, qdrant_target

if TYPE_CHECKING:
    from llm_engineering.application.ports import FeatureStore
    from llm_engineering.settings import Settings

EDGE = "edge"
QDRANT_LOCAL = "qdrant-local"
QDRANT_SERVER = "qdrant-server"
_ALIASES = {"": None, "auto": None, "edge": EDGE, "qdrant-edge": EDGE, "embedded": EDGE, "qdrant-local": QDRANT_LOCAL,
            "local": QDRANT_LOCAL, "qdrant-client-local": QDRANT_LOCAL}  # fmt: skip


def vector_store_backend(settings: Settings) -> str:
    """edge | qdrant-local | qdrant-server, from QDRANT_URL, VECTOR_STORE and QDRANT_PATH (in that order)."""
    if settings.qdrant_url:
        return QDRANT_SERVER
    raw = str(getattr(settings, "vector_store", None) or "").strip().lower()
    if raw not in _ALIASES:
        raise ConfigurationError(
            f"VECTOR_STORE={raw!r} is not a vector store: use 'edge' (default: Qdrant's in-process engine under "
            "DATA_DIR/qdrant-edge) or 'qdrant-local' (qdrant-client local mode under QDRANT_PATH); set QDRANT_URL "
            "for a Qdrant server."
        )
    choice = _ALIASES[raw]
    if choice is None:
        choice = QDRANT_LOCAL if settings.qdrant_path is not None else EDGE
    return choice


def get_feature_store(settings: Settings) -> FeatureStore:
    """The process-wide feature store for these settings (nothing opens until first used)."""
    backend = vector_store_backend(settings)
    if backend == EDGE:
        from .edge_store import get_edge_store

        return get_edge_store(settings)
    from .store import QdrantFeatureStore

    return QdrantFeatureStore(get_qdrant_client(settings))


# Owners of the shared store of each location (a wiring container, a service): it is closed when the last releases it,
# so one container closing cannot pull the store from under another one in the same process.
_owners: dict[str, int] = {}
_owners_lock = threading.Lock()


def _owner_key(settings: Settings) -> str:
    return f"{vector_store_backend(settings)}:{vector_store_location(settings)}"


def acquire_feature_store(settings: Settings) -> FeatureStore:
    """`get_feature_store` for an owner that calls `release_feature_store(settings)` when done with it."""
    with _owners_lock:
        store = get_feature_store(settings)
        key = _owner_key(settings)
        _owners[key] = _owners.get(key, 0) + 1
        return store


def release_feature_store(settings: Settings) -> None:
    """One owner is done: the last one closes the store (publishes pending writes, releases locks)."""
    with _owners_lock:
        key = _owner_key(settings)
        left = _owners.pop(key, 0) - 1
        if left > 0:
            _owners[key] = left
            return
    close_qdrant_clients(settings)


def vector_store_location(settings: Settings) -> str:
    """Where the feature store lives, for messages: a URL or a folder."""
    if vector_store_backend(settings) == EDGE:
        from .edge_store import edge_store_path

        return str(edge_store_path(settings))
    return qdrant_target(settings)


def close_qdrant_clients(settings: Settings | None = None) -> None:
    """Close the stores of these settings (or all): publishes pending embedded writes, releases the embedded
    writer lock and qdrant-client's local-mode folder lock, so another process can take over."""
    from .edge_store import close_edge_stores

    close_edge_stores(settings)
    _close_clients(settings)


__all__ = [
    "acquire_feature_store",
    "release_feature_store",
    "EDGE",
    "QDRANT_LOCAL",
    "QDRANT_SERVER",
    "close_qdrant_clients",
    "get_feature_store",
    "get_qdrant_client",
    "qdrant_target",
    "vector_store_backend",
    "vector_store_location",
]
