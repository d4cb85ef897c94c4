"""Generic blog and Substack crawlers over real HTTP on loopback, and the polite fetcher's retry rules."""

from __future__ import annotations

import http.server
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from bench.common import serve
from llm_engineering.application.crawlers.article import ArticleCrawler, SubstackCrawler
from llm_engineering.domain.documents import ArticleDocument, UserDocument
from llm_engineering.domain.errors import BotWallError, CrawlError
from llm_engineering.domain.types import Platform
from llm_engineering.infrastructure.http import PoliteHttpClient, parse_retry_after

ARTICLE = (
    b"<html lang='en'><head><meta property='og:title' content='Retried'></head>"
    b"<body><article><p>" + b"The server said wait, the crawler waited, and here is the text. " * 3 + b"</p>"
    b"</article></body></html>"
)


@pytest.fixture
def author() -> UserDocument:
    return UserDocument.from_full_name("Ada Lovelace")


@dataclass
class Reply:
    status: int = 200
    body: bytes = ARTICLE
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 that answers each request with the next scripted reply."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.hits: list[float] = []
        script = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                script.hits.append(time.monotonic())
                reply = script.replies.pop(0) if len(script.replies) > 1 else script.replies[0]
                time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(reply.body)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
                pass

        self._serving = serve(Handler)
        self.url = ""

    def __enter__(self) -> ScriptedServer:
        self.url = f"{self._serving.__enter__()}/post"
        return self

    def __exit__(self, *exc) -> None:
        self._serving.__exit__(*exc)


@pytest.fixture
def crawler(settings) -> Iterator[ArticleCrawler]:
    value = ArticleCrawler(PoliteHttpClient(settings))
    yield value
    value.fetcher.close()


def test_blog_post_keeps_headings_lists_code_and_links(crawler, fixture_server, author):
    link = f"{fixture_server}/blog_post.html"
    doc = crawler.crawl(link, author)
    assert isinstance(doc, ArticleDocument)
    assert doc.platform == Platform.BLOG.value and doc.link == link and doc.author_id == author.id
    assert doc.content["Title"] == "Python Tips"  # the article's <h1> beats "<title>Python Tips | Ada's Blog"
    assert doc.content["Subtitle"] == "Small habits that keep Python code readable"
    assert doc.content["language"] == "en-GB"
    text = doc.content["Content"]
    assert "## Lists" in text and "### Steps" in text and "## Code" in text
    assert "- Prefer comprehensions\n  - but keep them short\n- Use `enumerate` instead of indices" in text
    assert "1. Write the test\n2. Make it pass" in text
    assert f"[style guide]({fixture_server}/posts/style-guide)" in text
    assert "[PEP 8](https://peps.python.org/pep-0008/)" in text
    code = (
        "```python\nclass Greeter:\n    def greet(self, name):\n        if not name:\n"
        '            return "Hello, world"\n\n        return f"Hello, {name}"\n```'
    )
    assert code in text
    for noise in ("About", "Tags", "Related", "2026 Ada", "# Python Tips"):
        assert noise not in text


def test_substack_post_uses_its_layout_and_drops_widgets(settings, fixture_server, author):
    crawler = SubstackCrawler(PoliteHttpClient(settings))
    try:
        doc = crawler.crawl(f"{fixture_server}/substack_post.html", author)
    finally:
        crawler.fetcher.close()
    assert doc.platform == Platform.SUBSTACK.value
    assert doc.content["Title"] == "Notes on Retrieval"
    assert doc.content["Subtitle"] == "What I learned building hybrid search"
    text = doc.content["Content"]
    assert text.startswith("Dense vectors find meaning; sparse vectors find exact words.")
    assert "## Three steps\n\n1. Expand the query\n2. Search with filters\n3. Rerank the results" in text
    assert "> Retrieval quality bounds answer quality." in text
    assert "```\nscore = alpha * dense + (1 - alpha) * sparse\nif score > threshold:\n    keep(doc)\n```" in text
    assert f"[previous post]({fixture_server}/p/previous-post)" in text
    for noise in ("Subscribe", "Thanks for reading", "Share", "Nov 20, 2026"):
        assert noise not in text


def test_malformed_html_still_yields_a_document(crawler, fixture_server, author):
    doc = crawler.crawl(f"{fixture_server}/malformed.html", author)
    text = doc.content["Content"]
    assert doc.content["Title"] == "Broken page title"
    assert "First paragraph that never closes" in text and "- unclosed item one\n- unclosed item two" in text
    assert "unquoted link" in text  # lxml nests the rest of the page in the unclosed <a>: blocks survive
    assert "```\n  indented code\n    kept as is\n```" in text


def test_page_without_article_text_is_a_clear_error(crawler, fixture_server, author):
    link = f"{fixture_server}/no_article.html"
    with pytest.raises(CrawlError, match="no article text found") as info:
        crawler.crawl(link, author)
    assert info.value.link == link


def test_bot_wall_is_an_error_not_content(crawler, fixture_server, author):
    with pytest.raises(BotWallError, match="anti-bot challenge"):
        crawler.crawl(f"{fixture_server}/botwall.html", author)


def test_http_404_names_link_and_status(crawler, fixture_server, author):
    link = f"{fixture_server}/does_not_exist.html"
    with pytest.raises(CrawlError) as info:
        crawler.crawl(link, author)
    assert info.value.link == link and "HTTP 404" in str(info.value) and link in str(info.value)


def test_429_with_retry_after_then_200(settings, author):
    with ScriptedServer([Reply(429, b"slow down", {"Retry-After": "1"}), Reply(200)]) as server:
        crawler = ArticleCrawler(PoliteHttpClient(settings))
        try:
            doc = crawler.crawl(server.url, author)
        finally:
            crawler.fetcher.close()
    assert doc.content["Title"] == "Retried"
    assert len(server.hits) == 2
    assert server.hits[1] - server.hits[0] >= 0.95  # Retry-After honoured (backoff alone is 0.05 s)


def test_5xx_retried_with_backoff_then_gives_up_with_status(settings, author):
    with ScriptedServer([Reply(503, b"down")]) as server:
        client = PoliteHttpClient(settings.model_copy(update={"crawler_max_retries": 2, "crawler_backoff_s": 0.1}))
        with pytest.raises(CrawlError, match="HTTP 503 Service Unavailable after 3 attempts"):
            client.get(server.url)
        client.close()
    assert len(server.hits) == 3
    gaps = [b - a for a, b in zip(server.hits, server.hits[1:], strict=False)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19  # exponential: 0.1 s then 0.2 s


def test_retry_after_beyond_the_cap_fails_fast(settings):
    with ScriptedServer([Reply(429, b"", {"Retry-After": "3600"})]) as server:
        client = PoliteHttpClient(settings)
        with pytest.raises(CrawlError, match="retry after 3600s"):
            client.get(server.url)
        client.close()
    assert len(server.hits) == 1


def test_timeout_is_a_crawl_error(settings, author):
    with ScriptedServer([Reply(200, delay_s=1.5)]) as server:
        crawler = ArticleCrawler(PoliteHttpClient(settings.model_copy(update={"crawler_timeout_s": 0.3})))
        started = time.monotonic()
        with pytest.raises(CrawlError, match=r"timed out after 0.3s") as info:
            crawler.crawl(server.url, author)
        crawler.fetcher.close()
    assert info.value.link == server.url
    assert time.monotonic() - started < 1.4  # not retried


def test_connection_refused_is_a_crawl_error(settings, author):
    with ScriptedServer([Reply()]) as server:
        url = server.url
    crawler = ArticleCrawler(PoliteHttpClient(settings.model_copy(update={"crawler_max_retries": 1})))
    with pytest.raises(CrawlError, match="connection failed after 2 attempt"):
        crawler.crawl(url, author)


def test_per_domain_delay_and_user_agent(settings):
    agents: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            agents.append(self.headers.get("User-Agent", ""))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass

    client = PoliteHttpClient(settings.model_copy(update={"crawler_domain_delay_s": 0.3}))
    with serve(Handler) as base:
        try:
            started = time.monotonic()
            client.get(f"{base}/a")
            client.get(f"{base}/b")
            assert time.monotonic() - started >= 0.29
        finally:
            client.close()
    assert agents == [settings.crawler_user_agent] * 2


def test_parse_retry_after():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date: no wait
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_a_non_html_link_is_a_clear_error(settings, author):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-type", "application/pdf")
            self.send_header("Content-Length", "8")
            self.end_headers()
            self.wfile.write(b"%PDF-1.7")

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass

    crawler = ArticleCrawler(PoliteHttpClient(settings))
    with serve(Handler) as base:
        try:
            with pytest.raises(CrawlError, match=r"not a web page \(application/pdf\)"):
                crawler.crawl(f"{base}/paper.pdf", author)
        finally:
            crawler.fetcher.close()


def test_private_and_link_local_targets_are_refused_without_a_request(settings, author):
    """Regression (#14): web crawlers fetched link-local/private addresses (http://169.254.169.254/ would be read)."""
    guarded = settings.model_copy(update={"crawler_allowed_networks": "", "crawler_max_retries": 0})
    crawler = ArticleCrawler(PoliteHttpClient(guarded))
    for link in (
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:9/",
        "http://10.1.2.3/",
        "http://[::1]/",
    ):
        with pytest.raises(CrawlError, match="CRAWLER_ALLOW_PRIVATE_NETWORKS") as info:
            crawler.crawl(link, author)
        assert info.value.link == link
    crawler.fetcher.close()


def test_a_redirect_to_a_link_local_address_is_refused_before_it_is_followed(settings, author):
    """Regression (#14): redirects were followed across hosts, to anywhere."""
    hits: list[str] = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/iam/")
            self.end_headers()

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass

    crawler = ArticleCrawler(PoliteHttpClient(settings.model_copy(update={"crawler_max_retries": 0})))
    with serve(Redirect) as base:
        link = f"{base}/post"
        try:
            with pytest.raises(CrawlError, match=r"a redirect to http://169\.254\.169\.254/.*link-local") as info:
                crawler.crawl(link, author)
            assert info.value.link == link and hits == ["/post"]
        finally:
            crawler.fetcher.close()
