"""The RAG service end to end on real parts: sample corpus in the warehouse and Qdrant, real vLLM, real HTTP."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest

from tests.integration.llm.fixtures_llm import SAMPLE_AUTHOR

pytestmark = pytest.mark.slow

QUESTION = "How should documents be chunked for retrieval?"


def _qdrant_ids(settings, ids: list[str]) -> set[str]:
    """The ids that are chunks of the feature store (whichever adapter the settings select)."""
    from llm_engineering.infrastructure.qdrant import get_feature_store

    return set(get_feature_store(settings).all_points()) & set(ids)


def test_rag_returns_an_answer_with_sources_that_exist_in_qdrant(rag_app):
    response = httpx.post(f"{rag_app.url}/rag", json={"query": QUESTION, "k": 3}, timeout=120)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["answer"].strip()
    assert 1 <= len(data["sources"]) <= 3
    assert [s["number"] for s in data["sources"]] == list(range(1, len(data["sources"]) + 1))
    assert _qdrant_ids(rag_app.settings, [s["chunk_id"] for s in data["sources"]]) == {
        s["chunk_id"] for s in data["sources"]
    }
    assert all(s["link"].startswith("http") and s["author"] == SAMPLE_AUTHOR for s in data["sources"])
    assert len({s["document_id"] for s in data["sources"]}) == len(data["sources"])  # one passage per document
    for stage in ("self_query", "query_expansion", "search", "fusion", "context", "generation", "total"):
        assert data["timings_ms"][stage] >= 0
    assert data["tokens"]["prompt"] > data["tokens"]["context"] > 0
    assert 0 < data["tokens"]["completion"] <= 48
    assert data["tokens"]["counter"].startswith("tokenizer:")  # counted with the served model's tokenizer
    assert data["expanded_queries"][0] == QUESTION


def test_rag_author_filter_and_self_query(rag_app):
    explicit = httpx.post(
        f"{rag_app.url}/rag", json={"query": "vector search", "author": SAMPLE_AUTHOR.upper()}, timeout=120
    ).json()
    assert explicit["author"] == SAMPLE_AUTHOR and explicit["author_method"] == "request"

    unknown = httpx.post(f"{rag_app.url}/rag", json={"query": "vector search", "author": "Nobody Here"}, timeout=60)
    assert unknown.status_code == 422 and "unknown author" in unknown.json()["detail"]

    implicit = httpx.post(f"{rag_app.url}/rag", json={"query": "What does Marchetti say about chunking?"}, timeout=120)
    data = implicit.json()
    # The LLM may or may not pick her from the surname alone; if it names anyone, it is her (validated).
    assert data["author"] in (None, SAMPLE_AUTHOR)
    assert data["author_method"] in ("llm", "rule", "none")


def test_openai_sdk_unchanged_against_our_endpoint(rag_app):
    from openai import OpenAI

    client = OpenAI(base_url=f"{rag_app.url}/v1", api_key="unused", max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == ["llm-twin"]

    completion = client.chat.completions.create(
        model="llm-twin", messages=[{"role": "user", "content": QUESTION}], max_tokens=32
    )
    content = completion.choices[0].message.content
    assert content and "Sources:" in content and "http" in content
    assert completion.usage.completion_tokens > 0
    assert completion.model_extra["sources"]  # the extension field survives the SDK

    stream = client.chat.completions.create(
        model="llm-twin",
        messages=[
            {"role": "system", "content": "ignored: the twin has its own system prompt"},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": QUESTION},
        ],
        max_tokens=32,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) >= 3  # token by token, then the sources footer
    assert chunks[0].model_extra.get("sources")
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_raw_sse_format(rag_app):
    body = {"messages": [{"role": "user", "content": QUESTION}], "stream": True, "max_tokens": 8}
    with httpx.stream("POST", f"{rag_app.url}/v1/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0][6:])
    assert first["object"] == "chat.completion.chunk" and first["choices"][0]["delta"]["role"] == "assistant"


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/rag", {"query": ""}),
        ("/rag", {"query": "   "}),
        ("/rag", {"query": "x" * 100_000}),
        ("/rag", {"query": 42}),
        ("/rag", {"query": ["a"]}),
        ("/rag", {"query": "ok", "k": "many"}),
        ("/rag", {"query": "ok", "k": 0}),
        ("/rag", {}),
        ("/v1/chat/completions", {"messages": []}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": ""}]}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * 100_000}]}),
        ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}),
        ("/v1/chat/completions", {"messages": [{"role": "assistant", "content": "hi"}]}),
        ("/v1/chat/completions", {"messages": "hi"}),
    ],
)
def test_bad_inputs_are_4xx_never_5xx(rag_app, path, payload):
    response = httpx.post(f"{rag_app.url}{path}", json=payload, timeout=60)
    assert response.status_code == 422, response.text[:300]
    assert "Traceback" not in response.text and len(response.text) < 5000  # clear, short, no echo of 100k chars


def test_invalid_json_and_wrong_content(rag_app):
    for content in (b"{not json", b"", b"null", b"[1, 2]"):
        response = httpx.post(
            f"{rag_app.url}/rag", content=content, headers={"content-type": "application/json"}, timeout=30
        )
        assert 400 <= response.status_code < 500, (content, response.status_code)


def test_ready_reports_each_dependency(rag_app):
    response = httpx.get(f"{rag_app.url}/ready", timeout=30)
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) == {"warehouse", "vector_store", "llm"}


def test_saturation_gives_503_with_retry_after(rag_corpus_settings, serve_rag):
    app = serve_rag(rag_corpus_settings, inference_max_in_flight=1)

    def call(_: int) -> httpx.Response:
        return httpx.post(f"{app.url}/rag", json={"query": QUESTION}, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(call, range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 503 in statuses, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"].isdigit()
    assert "INFERENCE_MAX_IN_FLIGHT" in busy.json()["detail"]
    assert httpx.get(f"{app.url}/health").json()["in_flight"] == 0  # every slot released


def test_api_key_required_when_configured(rag_corpus_settings, serve_rag):
    from pydantic import SecretStr

    app = serve_rag(rag_corpus_settings, inference_api_key=SecretStr("s3cret"))
    assert httpx.post(f"{app.url}/rag", json={"query": QUESTION}).status_code == 401
    wrong = httpx.post(f"{app.url}/rag", json={"query": QUESTION}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{app.url}/v1/models").status_code == 401
    assert httpx.get(f"{app.url}/health").status_code == 200  # liveness stays open for orchestrators
    ok = httpx.get(f"{app.url}/v1/models", headers={"X-API-Key": "s3cret"})
    assert ok.status_code == 200

    from openai import AuthenticationError, OpenAI

    with pytest.raises(AuthenticationError):
        OpenAI(base_url=f"{app.url}/v1", api_key="wrong", max_retries=0).models.list()
