"""The API under failing dependencies and unsafe data (issue #25, findings 3 and 7), over a real socket.

The app runs under uvicorn on loopback with fake services (the failure is what is under test): an unexpected
exception is a JSON 500 and the keep-alive connection survives; a dependency failure is a 503 naming the
dependency with Retry-After; only http(s) links leave the API.
"""

from __future__ import annotations

import io
import threading
import time
import uuid

import httpx
import pytest
from loguru import logger

from llm_engineering.application.rag.rag_service import Source
from llm_engineering.domain.chunks import Chunk, RetrievalResult, RetrievedChunk
from llm_engineering.domain.errors import ServiceUnavailableError
from llm_engineering.domain.redaction import safe_link
from llm_engineering.infrastructure.api.routes.openai import sources_footer
from llm_engineering.infrastructure.local_services import find_free_port
from llm_engineering.settings import Settings

UNSAFE = ["javascript:alert(1)//", "JaVaScRiPt:alert(1)", "data:text/html,<script>x</script>", "file:///etc/passwd",
          "vbscript:msgbox", "//evil.example/x", "http://", "https://ok.example/\"><script>"]  # fmt: skip


def _chunk(link: str) -> Chunk:
    return Chunk(
        category="articles",
        author_id=uuid.uuid4(),
        author_full_name="Ada Example",
        platform="blog",
        link=link,
        title="<b>Title</b>",
        source_hash="x",
        id=uuid.uuid4(),
        document_id=uuid.uuid4(),
        position=0,
        text="text",
        token_count=1,
    )


class FakeSearch:
    def __init__(self, outcome) -> None:
        self.outcome = outcome

    def search(self, query, k=5, author=None, mode=None):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        hits = [RetrievedChunk(chunk=_chunk(link), score=1.0, rank=i + 1) for i, link in enumerate(self.outcome)]
        return RetrievalResult(query=query, hits=hits, metadata={"mode": "hybrid"})


class FakeRAG:
    async def aclose(self) -> None:
        pass


class Served:
    def __init__(self, search) -> None:
        import uvicorn

        from llm_engineering.infrastructure.api.app import create_app

        self.port = find_free_port()
        app = create_app(Settings(), rag_service=FakeRAG(), search_service=search)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def captured_log():
    stream = io.StringIO()
    sink = logger.add(stream, level="WARNING", diagnose=False, backtrace=False)
    yield stream
    logger.remove(sink)


def test_unexpected_error_is_a_500_and_the_connection_survives(captured_log, caplog):
    with Served(FakeSearch(KeyError("payload"))) as url, httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(6):  # one keep-alive connection: it used to alternate 500 and ConnectionResetError
            response = client.post("/search", json={"query": "hello"})
            assert response.status_code == 500
            assert response.json()["detail"] == "internal error; see the service log"
        assert client.get("/health").status_code == 200
    assert "Exception in ASGI application" not in caplog.text
    assert captured_log.getvalue().count("POST /search failed") == 6  # logged once each, by the app


def test_dependency_failure_is_a_503_naming_it_with_retry_after():
    error = ServiceUnavailableError("the data warehouse (MONGODB_URI) rejected the login", dependency="warehouse")
    with Served(FakeSearch(error)) as url, httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(3):
            response = client.post("/search", json={"query": "hello"})
            assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
            assert response.json()["error"]["code"] == "warehouse_unavailable"
            assert "MONGODB_URI" in response.json()["detail"]


def test_only_http_links_leave_the_search_api():
    links = [*UNSAFE, "https://blog.example/post?a=1", "http://user:pw@host.example/a"]
    with Served(FakeSearch(links)) as url, httpx.Client(base_url=url, timeout=10) as client:
        hits = client.post("/search", json={"query": "hello"}).json()["hits"]
    returned = [hit["link"] for hit in hits]
    assert returned[: len(UNSAFE)] == [""] * len(UNSAFE)
    assert returned[len(UNSAFE) :] == ["https://blog.example/post?a=1", "http://***@host.example/a"]


@pytest.mark.parametrize("link", UNSAFE)
def test_rag_sources_and_the_footer_drop_unsafe_links(link):
    source = Source(number=1, link=link, title="A title", author="A", score=1.0, chunk_id="c", document_id="d")
    assert source.link == "" and safe_link(link) == ""
    assert sources_footer([source]) == "\n\nSources:\n[1] A title"
    good = Source(number=2, link="https://x.example/a", title="B", author="A", score=1.0, chunk_id="c", document_id="d")
    assert sources_footer([good]).endswith("[2] B — https://x.example/a")
