"""One lazily created pymongo client per URI (embedded server and real MongoDB share this code path)."""

from __future__ import annotations

import threading

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError

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
            except Exception as exc:
                client.close()
                raise warehouse_error(exc, settings.mongodb_uri) from None  # the driver error holds the client
            _clients[settings.mongodb_uri] = client
    return client[settings.mongodb_database]


AUTH_FAILED_CODES = {11, 18}  # UserNotFound, AuthenticationFailed


def raised_inside_pymongo(exc: BaseException) -> bool:
    """True when the innermost frame of `exc` is pymongo's own code (a driver failure, not a bug of ours)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith(("pymongo", "bson"))


def warehouse_error(exc: BaseException, uri: str) -> ServiceUnavailableError:
    """A driver failure as the typed 'dependency unavailable' error: names MONGODB_URI (credentials masked),
    says whether the login was rejected, and never carries pymongo's objects (they hold the password)."""
    where = redact_credentials(uri)
    detail = redact_credentials(str(exc))[:300]
    if isinstance(exc, OperationFailure) and exc.code in AUTH_FAILED_CODES:
        message = (
            f"the data warehouse at MONGODB_URI={where!r} rejected the login ({detail}); "
            "check the user name and password in MONGODB_URI"
        )
    elif not isinstance(exc, PyMongoError) and "@" in uri:
        # e.g. KeyError('payload'): the server answered the SCRAM handshake with something else. The embedded
        # nx-27017 server has no authentication at all.
        message = (
            f"the data warehouse at MONGODB_URI={where!r} does not support the login given in MONGODB_URI "
            f"({type(exc).__name__}: {detail}); the embedded server (nx-27017) has no users: remove the "
            "user name and password from MONGODB_URI, or point it at a MongoDB that has them"
        )
    else:
        message = (
            f"cannot reach the data warehouse at MONGODB_URI={where!r}: {type(exc).__name__}: {detail}. "
            "Start it with `poe local-infrastructure-up` or point MONGODB_URI at a running MongoDB."
        )
    return ServiceUnavailableError(message, dependency="warehouse")


def close_clients() -> None:
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
