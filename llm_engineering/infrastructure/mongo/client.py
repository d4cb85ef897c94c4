"""One lazily created pymongo client per URI (embedded server and real MongoDB share this code path)."""

from __future__ import annotations

import threading

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError

from llm_engineering.domain.errors import ServiceUnavailableError
from llm_engineering.domain.redaction import redact_credentials
from llm_engineering.settings import Settings

from .server import ensure_warehouse_server

_clients: dict[str, MongoClient] = {}
_lock = threading.Lock()


def get_database(settings: Settings) -> Database:
    """The warehouse database; starts the embedded server on demand and checks the connection once."""
    with _lock:
        client = _clients.get(settings.mongodb_uri)
        if client is None:
            ensure_warehouse_server(settings)
            client = MongoClient(
                settings.mongodb_uri,
                serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
                tz_aware=True,
                uuidRepresentation="standard",
            )
            try:
                client.admin.command("ping")
            except PyMongoError as exc:
                client.close()
                where = redact_credentials(settings.mongodb_uri)
                raise ServiceUnavailableError(
                    f"Cannot reach the data warehouse at MONGODB_URI={where!r}: {redact_credentials(str(exc))}. "
                    "Start it with `poe local-infrastructure-up` or point MONGODB_URI at a running MongoDB."
                ) from exc
            _clients[settings.mongodb_uri] = client
    return client[settings.mongodb_database]


def close_clients() -> None:
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
