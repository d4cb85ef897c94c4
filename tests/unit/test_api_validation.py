"""The RAG service's guard rails without an LLM: validation, auth, limits, errors that name the fix.

Real parts: the app, the real RAG service built by the composition root, the real warehouse (nx-27017 from the
session fixture) and an empty Qdrant in local mode. The LLM URL points at a closed port on purpose.
"""

from __future__ import annotations

import json

import pytest

from llm_engineering.infrastructure.local_services import find_free_port
from llm_engineering.wiring import get_container

# Starlette deprecates driving TestClient with httpx (wants `httpx2`, not installed here): harmless for us.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def TestClient(app, **kwargs):  # noqa: N802 - stands in for the class, imported lazily under the filter above
    from fastapi.testclient import TestClient as _TestClient

    return _TestClient(app, base_url="http://127.0.0.1", **kwargs)  # an allowed Host


@pytest.fixture
def api_settings(settings):
    return settings.model_copy(
        update={
            "llm_base_url": f"http://127.0.0.1:{find_free_port()}/v1",  # nothing listens there
            "llm_max_retries": 0,
            "inference_max_query_chars": 2000,
        }
    )


@pytest.fixture
def client(api_settings):
    from llm_engineering.infrastructure.api.app import create_app

    with TestClient(
        create_app(api_settings, services=get_container(api_settings)), raise_server_exceptions=False
    ) as test_client:
        yield test_client


def test_health_models_and_chat_page(client):
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/v1/models").json()["data"][0]["id"] == "llm-twin"
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="question"' in page.text and 'maxlength="2000"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN, nothing fetched from outside


@pytest.mark.parametrize(
    ("path", "payload", "needle"),
    [
        ("/rag", {"query": ""}, "must not be empty"),
        ("/rag", {"query": " \n\t "}, "must not be empty"),
        ("/rag", {"query": "x" * 100_000}, "the limit is 2000"),
        ("/rag", {"query": 42}, "query"),
        ("/rag", {"query": None}, "query"),
        ("/rag", {"query": "ok", "k": "many"}, "k"),
        ("/rag", {"query": "ok", "k": 500}, "k"),
        ("/rag", {"query": "ok", "surprise": 1}, "surprise"),
        ("/rag", {}, "query"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": ""}]}, "must not be empty"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * 100_000}]}, "limit"),
        ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, "role"),
        ("/v1/chat/completions", {"messages": [{"role": "assistant", "content": "hi"}]}, "last message"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2}, "n"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "temperature": 9}, "temperature"),
        ("/v1/chat/completions", {"messages": "hi"}, "messages"),
        ("/rag", {"query": "bad \ud800 surrogate"}, "invalid Unicode"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x\udfff"}]}, "invalid Unicode"),
        ("/search", {"query": " "}, "query"),
        ("/search", {"query": "ok", "mode": "psychic"}, "mode"),
    ],
)
def test_bad_inputs_get_422_with_a_clear_short_message(client, path, payload, needle):
    # json.dumps escapes a lone surrogate as \udXXX: valid JSON, invalid Unicode (regression #14: it was a 500)
    response = client.post(path, content=json.dumps(payload), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text[:300]
    body = response.json()
    assert needle in body["detail"] and body["error"]["type"] == "invalid_request_error"
    assert len(response.text) < 3000 and "Traceback" not in response.text  # never echoes the 100k input


@pytest.mark.parametrize("content", [b"{not json", b"", b"null", b"[1, 2]", b'"just a string"'])
def test_invalid_json_is_4xx(client, content):
    response = client.post("/rag", content=content, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500


def test_oversized_body_is_413(client):
    response = client.post("/rag", content=b"{" + b" " * 1_200_000 + b"}", headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["type"] == "invalid_request_error"


def test_oversized_chunked_body_is_413_too(client):
    """Regression (#14): a chunked body has no Content-Length; only that header used to be checked."""

    def chunks():
        yield b'{"query": "'
        for _ in range(30):
            yield b"x" * 100_000
        yield b'"}'

    response = client.post("/rag", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "1000000 bytes" in response.json()["detail"]


def test_unreachable_llm_is_503_naming_the_setting(client):
    response = client.post("/rag", json={"query": "What is reciprocal rank fusion?"})
    assert response.status_code == 503
    assert "LLM_BASE_URL" in response.json()["detail"] and "Traceback" not in response.text
    assert response.headers["retry-after"].isdigit()
    streamed = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "What is RRF?"}], "stream": True}
    )
    assert streamed.status_code == 503 and "LLM_BASE_URL" in streamed.json()["error"]["message"]
    assert client.get("/health").json()["in_flight"] == 0  # failed requests release their slot


def test_ready_names_the_dependency_that_is_down(client):
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["not_ready"] == ["llm"]
    assert "LLM_BASE_URL" in body["checks"]["llm"]["detail"]
    assert "127.0.0.1" not in response.text  # the setting's name, never its value
    assert body["checks"]["warehouse"]["ok"] and body["checks"]["vector_store"]["ok"]


def test_unknown_author_is_422_and_creates_no_user(client, warehouse):
    response = client.post("/rag", json={"query": "What is RRF?", "author": "Nobody Known"})
    assert response.status_code == 422 and "unknown author" in response.json()["detail"]
    assert warehouse.find_user("Nobody Known") is None


def test_api_key_is_enforced_when_configured(api_settings):
    from pydantic import SecretStr

    from llm_engineering.infrastructure.api.app import create_app

    app = create_app(
        api_settings.model_copy(update={"inference_api_key": SecretStr("k3y")}), services=get_container(api_settings)
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        missing = client.post("/rag", json={"query": "hi"})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "API key" in missing.json()["detail"]
        assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 401  # auth before parsing
        assert client.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/v1/models", headers={"Authorization": "Bearer k3y"}).status_code == 200
        assert client.get("/v1/models", headers={"X-API-Key": "k3y"}).status_code == 200
        assert client.get("/health").status_code == 200
        for path in ("/ready", "/docs", "/openapi.json", "/"):  # regression (#14): these were open
            assert client.get(path).status_code == 401, path
        assert client.get("/openapi.json", headers={"X-API-Key": "k3y"}).json()["paths"]["/rag"]
        # The chat page: /?api_key= sets an HttpOnly, SameSite=Strict cookie and drops the key from the address.
        entry = client.get("/?api_key=k3y", follow_redirects=False)
        assert entry.status_code == 303 and entry.headers["location"] == "/"
        cookie = entry.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/").status_code == 200  # the cookie now authenticates the page and its requests
        assert client.get("/v1/models").status_code == 200


def test_a_budget_too_short_for_an_answer_is_refused_fast_not_timed_out(api_settings):
    from llm_engineering.infrastructure.api.app import create_app

    app = create_app(
        api_settings.model_copy(update={"inference_request_timeout_s": 0.5}), services=get_container(api_settings)
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/rag", json={"query": "What is RRF?"})
        assert response.status_code == 503 and "not enough time" in response.json()["detail"]
        assert response.headers["retry-after"].isdigit()
        assert client.get("/health").json()["in_flight"] == 0


def test_wrong_host_is_refused_and_security_headers_are_set(api_settings):
    from llm_engineering.infrastructure.api.app import create_app

    with TestClient(
        create_app(api_settings, services=get_container(api_settings)), raise_server_exceptions=False
    ) as client:
        page = client.get("/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'nonce-" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
        assert client.get("/health").headers["content-security-policy"].startswith("default-src 'none'")
        rebound = client.get("/health", headers={"host": "attacker.example"})
        assert rebound.status_code == 400 and "INFERENCE_ALLOWED_HOSTS" in rebound.json()["detail"]
        assert client.get("/health", headers={"host": "localhost:8010"}).status_code == 200
        preflight = client.options(
            "/rag", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers  # CORS closed by default


def test_a_warehouse_that_dies_gives_503_not_500(settings, tmp_path):
    """Regression (#14): with the warehouse stopped, /rag answered 500 once the author cache expired."""
    from llm_engineering.infrastructure.local_services import find_free_port
    from llm_engineering.infrastructure.mongo.client import close_clients
    from llm_engineering.infrastructure.mongo.server import embedded_server
    from llm_engineering.wiring import Container

    own = settings.model_copy(
        update={
            "data_dir": tmp_path / "own",
            "mongodb_uri": f"mongodb://127.0.0.1:{find_free_port()}",
            "mongodb_embedded": True,
            "mongodb_timeout_ms": 500,
            "llm_base_url": f"http://127.0.0.1:{find_free_port()}/v1",
            "llm_max_retries": 0,
        }
    )
    server = embedded_server(own)
    server.start()
    container = Container(own)
    container.warehouse.get_or_create_user("Ada Lovelace")
    rag, search = container.rag_service, container.search_service
    container.authors.ttl_s = 0  # as if the minute-long cache had expired
    from llm_engineering.infrastructure.api.app import create_app

    try:
        with TestClient(create_app(own, rag, search), raise_server_exceptions=False) as client:
            assert client.post("/rag", json={"query": "What did Ada Lovelace write?"}).status_code == 503  # no LLM
            server.stop()
            close_clients()
            for path in ("/rag", "/search"):
                response = client.post(path, json={"query": "What did Ada Lovelace write?"})
                assert response.status_code == 503, response.text
                assert "MONGODB_URI" in response.json()["detail"] and "127.0.0.1" not in response.text
            ready = client.get("/ready").json()
            assert "warehouse" in ready["not_ready"] and "127.0.0.1" not in str(ready)
    finally:
        server.stop()
        container.close()
