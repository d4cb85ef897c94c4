"""Fault injection: a warehouse that rejects the login, against the real service process (issue #25, 1/3/9).

nx-27017 (the embedded warehouse) has no authentication at all: it answers `saslStart` with `{ok: 1}` and no
payload, which made pymongo raise `KeyError('payload')`. To make a *rejected* login real, `RejectingMongo` is a
tiny loopback server that speaks enough of the MongoDB wire protocol (OP_QUERY / OP_MSG hello, then
`saslStart` → `{ok: 0, code: 18, codeName: "AuthenticationFailed"}`) for pymongo to raise its real
`OperationFailure` from its real SCRAM code path. Both cases are run with known secrets; every log and every file
under DATA_DIR is grepped for them.
"""

from __future__ import annotations

import os
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bson
import httpx
import pytest

PASSWORD = "s3cretPW-25x"
API_KEY = "sk-llm-key-25x"
OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013


def _hello() -> dict:
    return {
        "ok": 1.0,
        "ismaster": True,
        "isWritablePrimary": True,
        "helloOk": True,
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000,
        "minWireVersion": 0,
        "maxWireVersion": 21,
        "localTime": bson.datetime.datetime.now(),
        "logicalSessionTimeoutMinutes": 30,
        "connectionId": 1,
        "saslSupportedMechs": ["SCRAM-SHA-256", "SCRAM-SHA-1"],
    }


def _answer(command: dict) -> dict:
    name = next(iter(command), "").lower()
    if name in ("hello", "ismaster"):
        return _hello()
    if name in ("saslstart", "saslcontinue", "authenticate"):
        return {"ok": 0.0, "errmsg": "Authentication failed.", "code": 18, "codeName": "AuthenticationFailed"}
    return {"ok": 0.0, "errmsg": "command requires authentication", "code": 13, "codeName": "Unauthorized"}


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        while True:
            header = _read(sock, 16)
            if header is None:
                return
            length, request_id, _, opcode = struct.unpack("<iiii", header)
            body = _read(sock, length - 16)
            if body is None:
                return
            if opcode == OP_QUERY:  # flags, cstring collection, skip, limit, document
                end = body.index(b"\0", 4)
                command = bson.decode(body[end + 9 :][: struct.unpack("<i", body[end + 9 : end + 13])[0]])
                doc = bson.encode(_answer(command))
                payload = struct.pack("<iqii", 0, 0, 0, 1) + doc
                sock.sendall(struct.pack("<iiii", 16 + len(payload), 0, request_id, OP_REPLY) + payload)
            elif opcode == OP_MSG:  # flags, kind-0 section
                size = struct.unpack("<i", body[5:9])[0]
                command = bson.decode(body[5 : 5 + size])
                doc = bson.encode(_answer(command))
                payload = struct.pack("<I", 0) + b"\0" + doc
                sock.sendall(struct.pack("<iiii", 16 + len(payload), 0, request_id, OP_MSG) + payload)
            else:
                return


def _read(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def rejecting_mongo() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_rejected_login_is_a_typed_dependency_error(rejecting_mongo, settings):
    from llm_engineering.domain.errors import ServiceUnavailableError
    from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse

    uri = f"mongodb://twin:{PASSWORD}@127.0.0.1:{rejecting_mongo}/?authSource=admin"
    bad = settings.model_copy(update={"mongodb_uri": uri, "mongodb_timeout_ms": 2000})
    with pytest.raises(ServiceUnavailableError) as caught:
        MongoWarehouse(settings=bad).list_users()
    assert caught.value.dependency == "warehouse"
    assert "rejected the login" in str(caught.value) and PASSWORD not in str(caught.value)
    assert caught.value.__cause__ is None  # pymongo's error (it references the credentials) is not chained


def test_embedded_warehouse_with_credentials_names_the_fix(settings):
    """nx-27017 has no users: a credentialed URI used to give a raw KeyError('payload')."""
    from llm_engineering.domain.errors import ServiceUnavailableError
    from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse

    host = settings.mongodb_uri.removeprefix("mongodb://")
    bad = settings.model_copy(update={"mongodb_uri": f"mongodb://twin:{PASSWORD}@{host}/?authSource=admin"})
    with pytest.raises(ServiceUnavailableError) as caught:
        MongoWarehouse(settings=bad).list_users()
    assert "remove the user name and password" in str(caught.value) and PASSWORD not in str(caught.value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        process = subprocess.Popen(  # noqa: S603 - the project's own entry point
            [sys.executable, "-m", "tools.serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("the service did not start")


@pytest.mark.slow
@pytest.mark.parametrize("server", ["rejecting", "embedded"])
def test_service_answers_503_and_logs_no_secret(server, rejecting_mongo, mongo_uri, tmp_path):
    """The issue's case: /search and /rag x10 on one keep-alive connection with a warehouse refusing the login.
    Every answer is a 503 naming the warehouse with Retry-After (no 500, no reset connection); the service log
    and every file under DATA_DIR hold neither the password nor the API key."""
    host = f"127.0.0.1:{rejecting_mongo}" if server == "rejecting" else mongo_uri.removeprefix("mongodb://")
    data_dir = tmp_path / "data"
    port = _free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "MONGODB_URI": f"mongodb://twin:{PASSWORD}@{host}/?authSource=admin",
        "MONGODB_EMBEDDED": "false",
        "MONGODB_TIMEOUT_MS": "2000",
        "LLM_BASE_URL": f"http://127.0.0.1:{_free_port()}/v1",
        "LLM_API_KEY": API_KEY,
        "LLM_MAX_RETRIES": "0",
    }
    log = tmp_path / "service.log"
    process = _serve(env, port, log)
    try:
        statuses = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for index in range(10):
                path = "/search" if index % 2 else "/rag"
                response = client.post(path, json={"query": "how do I chunk documents?"})
                statuses.append(response.status_code)
                assert response.status_code == 503, response.text
                assert response.headers.get("Retry-After")
                body = response.json()
                assert body["error"]["code"] == "warehouse_unavailable" and "MONGODB_URI" in body["detail"]
                assert PASSWORD not in response.text and "twin" not in body["detail"]
            ready = client.get("/ready")
            assert ready.status_code == 503 and "warehouse" in ready.json()["not_ready"]
        assert statuses == [503] * 10
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert "Exception in ASGI application" not in text
    leaks = [str(p) for p in [log, *data_dir.rglob("*")] if p.is_file() and _holds_secret(p)]
    assert not leaks, f"secrets found in {leaks}"


def _holds_secret(path: Path) -> bool:
    data = path.read_bytes()
    return PASSWORD.encode() in data or API_KEY.encode() in data
