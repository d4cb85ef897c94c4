"""The real saved pages of bench/extraction_pages/ (Medium, Substack, LinkedIn Pulse, personal blogs) served on
127.0.0.1 and read by each platform's crawler as the composition root wires it: Medium and LinkedIn in headless
Chromium, Substack and blogs over HTTP. Each page must give its title, its 3 expected sentences, no sentence
twice and none of its chrome strings (manifest.jsonl)."""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import serve_directory
from llm_engineering.application.crawlers.dispatcher import CrawlerDispatcher
from llm_engineering.domain.documents import ArticleDocument, UserDocument
from llm_engineering.settings import Settings
from llm_engineering.wiring import Container

PAGES_DIR = Path(__file__).resolve().parents[2] / "bench" / "extraction_pages"
PAGES = [json.loads(line) for line in (PAGES_DIR / "manifest.jsonl").read_text("utf-8").splitlines() if line]
BROWSER_PLATFORMS = ("medium", "linkedin")
# A link on each platform's host: pages saved from custom domains (Medium publications) are read by their
# platform's crawler, as a link on the platform's own host would be.
PLATFORM_LINKS = {
    "medium": "https://medium.com/@bench/probe",
    "substack": "https://bench.substack.com/p/probe",
    "linkedin": "https://www.linkedin.com/posts/probe",
    "blog": "https://blog.example.org/probe",
}
MIN_DUPLICATE_WORDS = 8


def _case(page: dict):
    marks = [pytest.mark.browser] if page["platform"] in BROWSER_PLATFORMS else []
    return pytest.param(page, id=page["id"], marks=marks)


# --- comparing text as a reader does (the benchmark's rules) ----------------------------------------------------
_CHARS = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u00a0": " "}
)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "").translate(_CHARS).replace("\u2026", "...")
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # Markdown links -> their text
    text = re.sub(r"\\([\\`*_{}\[\]()#+\-.!|>~<])", r"\1", text)
    text = re.sub(r"[*_`#>|~]+", " ", text)
    text = re.sub(r"\s+([,.;:!?)\]])", r"\1", re.sub(r"\s+", " ", text))
    return text.strip().casefold()


def normalise_title(title: str) -> str:
    return " ".join(re.findall(r"\w+", unicodedata.normalize("NFKC", title or "").translate(_CHARS).casefold()))


def repeated_sentences(body: str) -> list[str]:
    sentences = [
        part.strip()
        for line in body.splitlines()
        for part in re.split(r"(?<=[.!?])\s+", normalise(line))
        if len(part.split()) >= MIN_DUPLICATE_WORDS
    ]
    return [sentence for sentence, count in Counter(sentences).items() if count > 1]


# --- fixtures -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pages_server() -> Iterator[str]:
    """Serves /<platform>/<file> from the pages folder (the benchmark's server, bench/common.py)."""
    with serve_directory(PAGES_DIR, flat=True) as url:
        yield url


@pytest.fixture(scope="module")
def crawl_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("real-pages")).model_copy(update={"crawler_domain_delay_s": 0.0})


@pytest.fixture(scope="module")
def dispatcher(crawl_settings: Settings) -> Iterator[CrawlerDispatcher]:
    """The production dispatcher, one per module: its crawlers share one Chromium and one HTTP session."""
    value = Container(crawl_settings).crawler_dispatcher()
    yield value
    value.close()


@pytest.fixture
def chromium_if_needed(request: pytest.FixtureRequest, crawl_settings: Settings) -> None:
    page = request.node.callspec.params["page"]
    if page["platform"] not in BROWSER_PLATFORMS:
        return
    if not (Path(crawl_settings.chromium_binary).is_file() and Path(crawl_settings.chromedriver_path).is_file()):
        message = "Chromium not installed: apt-get install -y chromium chromium-driver (bash tools/setup.sh --test)"
        if os.environ.get("CI"):  # CI installs Chromium: a missing browser there is a failure, not a skip
            pytest.fail(message)
        pytest.skip(message)


def test_the_page_set_covers_the_platforms():
    platforms = Counter(page["platform"] for page in PAGES)
    assert len(PAGES) >= 20 and all(platforms[p] >= 2 for p in ("medium", "substack", "linkedin", "blog"))
    assert any("paywall" in page["id"] for page in PAGES)


@pytest.mark.parametrize("page", [_case(page) for page in PAGES])
def test_real_page_through_its_platform_crawler(page, dispatcher, pages_server, chromium_if_needed):
    on_platform = dispatcher.platform_for(page["url"]) == page["platform"]
    crawler = dispatcher.get_crawler(page["url"] if on_platform else PLATFORM_LINKS[page["platform"]])
    link = f"{pages_server}/{page['platform']}/{page['file']}"
    doc = crawler.crawl(link, UserDocument.from_full_name("Bench Author"))

    assert isinstance(doc, ArticleDocument)  # LinkedIn Pulse articles too: /pulse/ links go to the article crawler
    assert normalise_title(doc.content["Title"]) == normalise_title(page["title"])
    body = doc.content["Content"]
    text = normalise(body)
    missing = [s for s in page["sentences"] if normalise(s) not in text]
    assert not missing, f"sentences missing: {missing}"
    twice = [s for s in page["sentences"] if text.count(normalise(s)) > 1] + repeated_sentences(body)
    assert not twice, f"stored more than once: {twice}"
    leaked = [c for c in page["chrome"] if normalise(c) in text]
    assert not leaked, f"chrome in the body: {leaked}"
