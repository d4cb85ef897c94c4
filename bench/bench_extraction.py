"""Extraction on real saved pages (issue #12): title accuracy, sentence recall, duplicates, boilerplate leaked.

The pages in ``bench/extraction_pages/`` (see its README for sources and licences) are served on 127.0.0.1 by a
stdlib HTTP server in a thread, each under ``/<platform>/<file>``. Every extractor reads every page from that
server and returns ``(title, body)``; the body is scored against the manifest:

- title accuracy: normalised title equals the expected title (case, punctuation, emoji and quotes ignored);
- sentence recall: each of the 3 expected sentences is found in the body (whitespace, quote/dash style and
  Markdown markup ignored);
- duplicated sentences: an expected sentence, or any body sentence of >= 8 words, that occurs more than once;
- boilerplate leaked: a ``chrome`` string of the manifest (sign-up prompts, cookie banners, comments,
  recommendations) found in the body.

Two kinds of extractor run side by side in one run:

- ``EXTRACTORS``: ``name -> callable(html, url) -> (title, body)``, plain functions on the page's HTML;
- ``CRAWLER_MODES``: ``name -> callable(pages, base_url, settings) -> {page_id: (title, body)}``, whole crawls
  through the project's own crawler classes, Chromium for Medium and LinkedIn: "current" is today's crawlers
  (trafilatura-based, as the composition root wires them), "previous" the hand-rolled extractor they replaced,
  read from a temporary ``git worktree`` at ``PREVIOUS_COMMIT`` (see ``previous_crawlers()``) and driven by
  today's base classes and adapters.

Adding a candidate is one more entry in either table. Run from the repository root:

    .venv/bin/python bench/bench_extraction.py --output bench/results/extraction.json
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import functools
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import types
import unicodedata
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from common import cpu_info, serve_directory

ROOT = Path(__file__).resolve().parents[1]
PAGES_DIR = ROOT / "bench" / "extraction_pages"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "extraction.json"
MIN_DUP_WORDS = 8

Extractor = Callable[[str, str], tuple[str, str]]


@dataclass(frozen=True)
class Page:
    id: str
    file: str
    platform: str
    url: str
    title: str
    sentences: list[str]
    chrome: list[str]
    layout_year: int | None = None
    notes: str = ""
    source: str = ""

    @classmethod
    def from_json(cls, row: dict) -> Page:
        return cls(
            id=row["id"],
            file=row["file"],
            platform=row["platform"],
            url=row["url"],
            title=row["title"],
            sentences=list(row["sentences"]),
            chrome=list(row.get("chrome", [])),
            layout_year=row.get("layout_year"),
            notes=row.get("notes", ""),
            source=row.get("source", ""),
        )


def load_pages(pages_dir: Path, only: set[str] | None = None) -> list[Page]:
    rows = [json.loads(line) for line in (pages_dir / "manifest.jsonl").read_text("utf-8").splitlines() if line]
    pages = [Page.from_json(row) for row in rows]
    return [page for page in pages if not only or page.id in only]


# --------------------------------------------------------------------------------------------- normalisation
_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u200b": "",
        "\u200c": "",
        "\u200d": "",
        "\ufeff": "",
        "\u00ad": "",
    }
)
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~<])")
_MD_MARKUP = re.compile(r"[*_`#>|~]+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?)\]])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[])\s+")
_WS = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Text as a reader sees it: Markdown links/emphasis and escapes dropped, quotes and dashes unified,
    whitespace collapsed (also before punctuation), case folded. Applied to bodies and expected strings alike."""
    text = unicodedata.normalize("NFKC", text or "").translate(_CHAR_MAP)
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_ESCAPE.sub(r"\1", text)
    text = _MD_MARKUP.sub(" ", text)
    text = _WS.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _SPACE_AFTER_OPEN.sub(r"\1", text)
    return text.strip().casefold()


def normalise_title(title: str) -> str:
    """Letters and digits only (emoji, quotes and punctuation dropped), one space between words, case folded."""
    text = unicodedata.normalize("NFKC", title or "").translate(_CHAR_MAP).casefold()
    return " ".join(re.findall(r"\w+", text))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def body_sentences(normalised_lines: list[str]) -> list[str]:
    sentences: list[str] = []
    for line in normalised_lines:
        sentences.extend(part.strip() for part in _SENTENCE_END.split(line) if part.strip())
    return sentences


# ------------------------------------------------------------------------------------------------- scoring
@dataclass
class PageScore:
    id: str
    platform: str
    title_expected: str
    title_found: str
    title_ok: bool
    sentences_found: int
    sentences_missing: list[str]
    duplicated: list[str]
    chrome_leaked: list[str]
    body_chars: int
    body_excerpt: str
    seconds: float
    error: str | None = None
    extras: dict = field(default_factory=dict)


def score_page(page: Page, title: str, body: str, seconds: float, error: str | None = None) -> PageScore:
    norm_body = normalise_text(body)
    # Keep line structure for sentence splitting: normalise each line on its own.
    lines = [normalise_text(line) for line in (body or "").splitlines()]
    missing = [s for s in page.sentences if normalise_text(s) not in norm_body]
    duplicated: list[str] = []
    for sentence in page.sentences:
        if norm_body.count(normalise_text(sentence)) > 1:
            duplicated.append(sentence)
    counts = Counter(s for s in body_sentences(lines) if len(s.split()) >= MIN_DUP_WORDS)
    already = {normalise_text(s) for s in duplicated}
    duplicated.extend(s for s, n in counts.items() if n > 1 and s not in already)
    leaked = [c for c in page.chrome if normalise_text(c) in norm_body]
    return PageScore(
        id=page.id,
        platform=page.platform,
        title_expected=page.title,
        title_found=title or "",
        title_ok=bool(title) and normalise_title(title) == normalise_title(page.title),
        sentences_found=len(page.sentences) - len(missing),
        sentences_missing=missing,
        duplicated=duplicated,
        chrome_leaked=leaked,
        body_chars=len(body or ""),
        body_excerpt=(body or "")[:300],
        seconds=round(seconds, 3),
        error=error,
    )


def totals(scores: list[PageScore], pages: list[Page]) -> dict:
    n_pages = len(scores)
    n_sentences = sum(len(p.sentences) for p in pages)
    n_chrome = sum(len(p.chrome) for p in pages)
    found = sum(s.sentences_found for s in scores)
    per_platform: dict[str, dict] = {}
    for platform_name in sorted({s.platform for s in scores}):
        rows = [s for s in scores if s.platform == platform_name]
        expected = sum(len(p.sentences) for p in pages if p.platform == platform_name)
        per_platform[platform_name] = {
            "pages": len(rows),
            "titles_ok": sum(s.title_ok for s in rows),
            "sentences_found": sum(s.sentences_found for s in rows),
            "sentences_expected": expected,
        }
    return {
        "pages": n_pages,
        "title_accuracy": round(sum(s.title_ok for s in scores) / n_pages, 4) if n_pages else None,
        "titles_ok": sum(s.title_ok for s in scores),
        "sentence_recall": round(found / n_sentences, 4) if n_sentences else None,
        "sentences_found": found,
        "sentences_expected": n_sentences,
        "duplicated_sentences": sum(len(s.duplicated) for s in scores),
        "pages_with_duplicates": sum(bool(s.duplicated) for s in scores),
        "chrome_leaked": sum(len(s.chrome_leaked) for s in scores),
        "chrome_checked": n_chrome,
        "pages_with_leaks": sum(bool(s.chrome_leaked) for s in scores),
        "errors": sum(s.error is not None for s in scores),
        "seconds": round(sum(s.seconds for s in scores), 2),
        "per_platform": per_platform,
    }


# ------------------------------------------------------------------------------------------ local page server
def serve(pages_dir: Path):
    """The pages folder on 127.0.0.1: ``/<platform>/<file>`` serves ``<file>`` (the platform only shapes the URL)."""
    return serve_directory(pages_dir, flat=True)


def local_url(base_url: str, page: Page) -> str:
    return f"{base_url}/{page.platform}/{page.file}"


def fetch_html(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback only
        raw = response.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


# ---------------------------------------------------------------------------------------- library extractors
def extract_trafilatura(html: str, url: str) -> tuple[str, str]:
    """trafilatura as the later implementation would call it: Markdown with formatting and links."""
    import trafilatura

    body = trafilatura.extract(
        html,
        url=url,
        output_format="markdown",
        include_formatting=True,
        include_links=True,
        include_comments=False,
        include_tables=True,
        favor_precision=False,
    )
    metadata = trafilatura.extract_metadata(html, default_url=url)
    return (metadata.title if metadata and metadata.title else ""), body or ""


def extract_readability(html: str, url: str) -> tuple[str, str]:
    """readability-lxml (a Readability.js port) for the body, markdownify for Markdown."""
    from markdownify import markdownify
    from readability import Document

    document = Document(html, url=url)
    body = markdownify(document.summary(html_partial=True), heading_style="ATX")
    return document.short_title() or "", body


def extract_justext(html: str, url: str) -> tuple[str, str]:
    """jusText paragraph classifier (English stop list); it has no title extraction: <title> as is."""
    import justext
    from lxml import html as lxml_html

    paragraphs = justext.justext(html.encode("utf-8"), justext.get_stoplist("English"), encoding="utf-8")
    body = "\n\n".join(p.text for p in paragraphs if not p.is_boilerplate)
    try:
        tree = lxml_html.fromstring(html)
    except ValueError:  # a str with an XML encoding declaration: let lxml read the bytes
        tree = lxml_html.fromstring(html.encode("utf-8"))
    title = tree.findtext(".//title") or ""
    return title.strip(), body


EXTRACTORS: dict[str, Extractor] = {
    "trafilatura": extract_trafilatura,
    "readability+markdownify": extract_readability,
    "justext": extract_justext,
}


# ----------------------------------------------------------------------------------------- crawler modes
CrawlResult = tuple[str, str, float, str | None]


# A link of each platform's own host: asking the production dispatcher for it returns the crawler instance it
# wires for that platform (shared browser, HTTP session and throttle), which is then pointed at 127.0.0.1.
PLATFORM_PROBES = {
    "medium": "https://medium.com/@bench/probe",
    "substack": "https://bench.substack.com/p/probe",
    "linkedin": "https://www.linkedin.com/posts/probe",
    "blog": "https://blog.example.org/probe",
}


def project_dispatcher(settings):
    """The crawler dispatcher exactly as the project builds it: from the composition root when there is one
    (`Container.crawler_dispatcher`), else `CrawlerDispatcher.build(settings)`."""
    try:
        from llm_engineering.wiring import Container
    except ImportError:
        Container = None  # noqa: N806 - optional class
    if Container is not None and hasattr(Container, "crawler_dispatcher"):
        return Container(settings).crawler_dispatcher()
    from llm_engineering.application.crawlers.dispatcher import CrawlerDispatcher

    return CrawlerDispatcher.build(settings)


def crawl_pages(pages: list[Page], base_url: str, settings, crawler_for: Callable[[Page], object]) -> dict:
    """Crawl each page's 127.0.0.1 URL with the crawler `crawler_for(page)` picks; failures are scored misses."""
    from llm_engineering.domain.documents import UserDocument

    browser_ok = Path(settings.chromium_binary).is_file() and Path(settings.chromedriver_path).is_file()
    author = UserDocument.from_full_name("Bench Author")
    results: dict[str, CrawlResult] = {}
    for page in pages:
        link = local_url(base_url, page)
        if page.platform in ("medium", "linkedin") and not browser_ok:
            results[page.id] = ("", "", 0.0, "Chromium not installed (bash tools/setup.sh --test)")
            continue
        start = time.perf_counter()
        try:
            content = crawler_for(page).crawl(link, author).content
            results[page.id] = (content.get("Title", ""), content.get("Content", ""), time.perf_counter() - start, None)
        except Exception as exc:  # a failed page is a scored miss, not the end of the run
            results[page.id] = ("", "", time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    return results


def crawl_current(pages: list[Page], base_url: str, settings) -> dict[str, CrawlResult]:
    """Today's crawlers as the ETL wires them (the composition root's dispatcher). Each page is read by its
    platform's crawler: the one the dispatcher picks for the page's original URL when that URL is on the
    platform's host (so a LinkedIn Pulse URL gets the article crawler), else the one it picks for a link of
    that platform's host (Medium publications on custom domains are read by the Medium crawler). Medium and
    LinkedIn drive headless Chromium, Substack and blogs are fetched over HTTP."""
    dispatcher = project_dispatcher(settings)

    def crawler_for(page: Page):
        on_platform = str(dispatcher.platform_for(page.url)) == page.platform
        return dispatcher.get_crawler(page.url if on_platform else PLATFORM_PROBES[page.platform])

    try:
        return crawl_pages(pages, base_url, settings, crawler_for)
    finally:
        dispatcher.close()


# The last commit with the hand-rolled extractor (before issue #12). Its crawler modules are read from a temporary
# `git worktree` at that commit and imported as the `previous_crawlers` package: their imports of each other are
# renamed into that package; everything else they import (crawler base classes, ports, domain, adapters) is today's.
PREVIOUS_COMMIT = "2341371"
PREVIOUS_DIR = "llm_engineering/application/crawlers"
PREVIOUS_MODULES = ("html_text", "walls", "article", "browser_crawler", "medium", "linkedin")  # dependency order


@functools.cache
def previous_crawlers() -> types.SimpleNamespace:
    """The previous crawler modules, imported from a git worktree at PREVIOUS_COMMIT (removed at exit)."""
    worktree = Path(tempfile.mkdtemp(prefix="previous-crawlers-")) / "tree"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(worktree), PREVIOUS_COMMIT], check=True)
    atexit.register(_remove_worktree, worktree)
    package = types.ModuleType("previous_crawlers")
    package.__path__ = [str(worktree / PREVIOUS_DIR)]
    sys.modules["previous_crawlers"] = package
    old = PREVIOUS_DIR.replace("/", ".")
    renames = {f"{old}.{name}": f"previous_crawlers.{name}" for name in PREVIOUS_MODULES}
    if importlib.util.find_spec(f"{old}.base") is None:  # today's base classes moved: follow them
        renames[f"{old}.base"] = "llm_engineering.application.sources.base"
    modules = {}
    for name in PREVIOUS_MODULES:
        path = worktree / PREVIOUS_DIR / f"{name}.py"
        source = path.read_text(encoding="utf-8")
        for before, after in renames.items():
            source = re.sub(rf"\b{re.escape(before)}\b", after, source)
        module = types.ModuleType(f"previous_crawlers.{name}")
        module.__file__ = str(path)
        sys.modules[module.__name__] = module
        exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - this repository's own history
        modules[name] = module
    return types.SimpleNamespace(**modules)


def _remove_worktree(worktree: Path) -> None:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)
    shutil.rmtree(worktree.parent, ignore_errors=True)


def crawl_previous(pages: list[Page], base_url: str, settings) -> dict[str, CrawlResult]:
    """The hand-rolled extractor before issue #12 (from the worktree at PREVIOUS_COMMIT), wired as the ETL wired
    it then: Medium and every LinkedIn link (it had no article crawler) in Chromium, Substack and blogs over
    HTTP; today's adapters (polite HTTP client, browser session, throttle)."""
    previous = previous_crawlers()
    ArticleCrawler, SubstackCrawler = previous.article.ArticleCrawler, previous.article.SubstackCrawler  # noqa: N806
    LinkedInCrawler, MediumCrawler = previous.linkedin.LinkedInCrawler, previous.medium.MediumCrawler  # noqa: N806

    from llm_engineering.infrastructure.browser import BrowserSession
    from llm_engineering.infrastructure.http import DomainThrottle, PoliteHttpClient
    from llm_engineering.wiring import Container

    config = Container(settings).crawler_config()
    throttle = DomainThrottle(settings.crawler_domain_delay_s)
    fetcher = PoliteHttpClient(settings, throttle=throttle)
    browser = BrowserSession(settings)
    crawlers = {
        "medium": MediumCrawler(browser, throttle, config),
        "substack": SubstackCrawler(fetcher),
        "linkedin": LinkedInCrawler(browser, throttle, config),
        "blog": ArticleCrawler(fetcher),
    }
    try:
        return crawl_pages(pages, base_url, settings, lambda page: crawlers[page.platform])
    finally:
        browser.close()
        fetcher.close()


CRAWLER_MODES: dict[str, Callable[[list[Page], str, object], dict[str, CrawlResult]]] = {
    "previous": crawl_previous,
    "current": crawl_current,
}


# Import needed by each extractor: a missing package skips that extractor with a message instead of scoring it 0.
EXTRACTOR_IMPORTS = {
    "trafilatura": ("trafilatura",),
    "readability+markdownify": ("readability", "markdownify"),
    "justext": ("justext",),
}


def missing_modules(name: str) -> list[str]:
    import importlib.util

    return [module for module in EXTRACTOR_IMPORTS.get(name, ()) if importlib.util.find_spec(module) is None]


def run_extractor(extractor: Extractor, pages: list[Page], base_url: str) -> dict[str, CrawlResult]:
    results: dict[str, CrawlResult] = {}
    for page in pages:
        url = local_url(base_url, page)
        start = time.perf_counter()
        try:
            html = fetch_html(url)
            title, body = extractor(html, page.url)
            results[page.id] = (title, body, time.perf_counter() - start, None)
        except Exception as exc:
            tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            results[page.id] = ("", "", time.perf_counter() - start, tail)
    return results


# ------------------------------------------------------------------------------------------- held-out check
# The 21 pages above were read while the extractor was built. A held-out check: the article pages of the WCXB
# benchmark's *test* split (Murrough-Foley/web-content-extraction-benchmark, CC-BY-4.0; none of them is in
# extraction_pages/), each with an annotated main text, title, "with" snippets (must be in the body) and
# "without" snippets (boilerplate). Extractors read the HTML directly (no crawl, no browser); "current" and
# "previous" are the two crawler generations' extraction on the HTML with the hints the page's host gets.
HELDOUT_DEFAULT_SPLIT = "test,dev"


def current_html(html: str, url: str) -> tuple[str, str]:
    from llm_engineering.application.crawlers.article import SUBSTACK_HINTS
    from llm_engineering.application.crawlers.extraction import GENERIC_HINTS, extract_article, parse_html
    from llm_engineering.application.crawlers.linkedin import PULSE_HINTS, is_linkedin_article
    from llm_engineering.application.crawlers.medium import MEDIUM_HINTS

    host = urlsplit(url).hostname or ""
    hints = GENERIC_HINTS
    if host == "medium.com" or host.endswith(".medium.com"):
        hints = MEDIUM_HINTS
    elif host.endswith("substack.com"):
        hints = SUBSTACK_HINTS
    elif is_linkedin_article(url):
        hints = PULSE_HINTS
    content = extract_article(parse_html(html), url, url, hints)
    return content["Title"], content["Content"]


def previous_html(html: str, url: str) -> tuple[str, str]:
    previous = previous_crawlers()
    host = urlsplit(url).hostname or ""
    layout = previous.article.GENERIC_LAYOUT
    if host == "medium.com" or host.endswith(".medium.com"):
        layout = previous.medium.MEDIUM_LAYOUT
    elif host.endswith("substack.com"):
        layout = previous.article.SUBSTACK_LAYOUT
    content = previous.article.extract_article(previous.html_text.parse_html(html), url, url, layout)
    return content["Title"], content["Content"]


HELDOUT_EXTRACTORS: dict[str, Extractor] = {
    "previous": previous_html,
    "current": current_html,
    **EXTRACTORS,
}


def _words(text: str) -> Counter:
    return Counter(re.findall(r"\w+", normalise_text(text)))


def word_prf(predicted: str, reference: str) -> tuple[float, float, float]:
    """WCXB's word-level precision / recall / F1 (after Markdown is reduced to the text a reader sees)."""
    pred, ref = _words(predicted), _words(reference)
    if not ref:
        return (1.0, 1.0, 1.0) if not pred else (0.0, 0.0, 0.0)
    if not pred:
        return (0.0, 0.0, 0.0)
    overlap = sum((pred & ref).values())
    precision, recall = overlap / sum(pred.values()), overlap / sum(ref.values())
    return precision, recall, (2 * precision * recall / (precision + recall) if overlap else 0.0)


def heldout_pages(wcxb_dir: Path, split: str, exclude: set[str]) -> list[tuple[str, str, str, dict]]:
    import gzip

    meta = json.loads((wcxb_dir / "metadata.json").read_text("utf-8"))["files"]
    rows = []
    for truth_file in sorted((wcxb_dir / split / "ground-truth").glob("*.json")):
        file_id = truth_file.stem
        if meta.get(file_id, {}).get("page_type") != "article" or file_id in exclude:
            continue
        record = json.loads(truth_file.read_text("utf-8"))
        raw = gzip.decompress((wcxb_dir / split / "html" / f"{file_id}.html.gz").read_bytes())
        rows.append((file_id, record["url"], raw.decode("utf-8", errors="replace"), record["ground_truth"]))
    return rows


def heldout_report(wcxb_dir: Path, split: str, names: list[str]) -> dict:
    import logging

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    in_set = {m.group(1) for p in load_pages(PAGES_DIR) if (m := re.search(r"/(\d+)\.html\.gz$", p.source))}
    rows = heldout_pages(wcxb_dir, split, in_set)
    report: dict = {
        "source": "Murrough-Foley/web-content-extraction-benchmark (WCXB v1.0, CC-BY-4.0)",
        "split": split,
        "pages": len(rows),
        "excluded_in_extraction_pages": sorted(in_set),
        "metrics": "per-page word precision/recall/F1 vs the annotated main text, averaged; with = annotated "
        "snippets found; without = boilerplate snippets leaked; titles = normalised equality",
        "extractors": {},
    }
    for name in names:
        if name in EXTRACTOR_IMPORTS and missing_modules(name):
            continue
        extractor = HELDOUT_EXTRACTORS[name]
        print(f"held-out: {name} on {len(rows)} pages ...", file=sys.stderr, flush=True)
        sums: Counter = Counter()
        worst: list[tuple[float, str]] = []
        start = time.perf_counter()
        for file_id, url, html, truth in rows:
            try:
                title, body = extractor(html, url)
            except Exception:
                title, body = "", ""
                sums["errors"] += 1
            precision, recall, f1 = word_prf(body, truth.get("main_content") or "")
            sums["precision"] += precision
            sums["recall"] += recall
            sums["f1"] += f1
            text = normalise_text(body)
            sums["with_found"] += sum(normalise_text(s) in text for s in truth.get("with") or [])
            sums["with_total"] += len(truth.get("with") or [])
            sums["without_leaked"] += sum(normalise_text(s) in text for s in truth.get("without") or [])
            sums["without_total"] += len(truth.get("without") or [])
            if truth.get("title"):
                sums["titles"] += 1
                sums["titles_ok"] += normalise_title(title) == normalise_title(truth["title"])
            worst.append((round(f1, 3), file_id))
        n = len(rows) or 1
        report["extractors"][name] = {
            "precision": round(sums["precision"] / n, 4),
            "recall": round(sums["recall"] / n, 4),
            "f1": round(sums["f1"] / n, 4),
            "with_found": f"{sums['with_found']}/{sums['with_total']}",
            "without_leaked": f"{sums['without_leaked']}/{sums['without_total']}",
            "titles_ok": f"{sums['titles_ok']}/{sums['titles']}",
            "title_accuracy": round(sums["titles_ok"] / max(1, sums["titles"]), 4),
            "errors": sums["errors"],
            "seconds": round(time.perf_counter() - start, 1),
            "lowest_f1": [f"{file_id}:{f1}" for f1, file_id in sorted(worst)[:10]],
        }
    return report


# --------------------------------------------------------------------------------------------- environment
def cpu_model() -> str:
    return cpu_info()["cpu_model"]


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("trafilatura", "readability-lxml", "markdownify", "jusText", "lxml", "beautifulsoup4", "selenium"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    try:
        out = subprocess.run(["chromium", "--version"], capture_output=True, text=True, timeout=20, check=False)
        found["chromium"] = out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        found["chromium"] = None
    return found


def bench_settings(timeout_s: float | None):
    """Project settings with a throw-away data folder and no per-domain delay (every page is on 127.0.0.1)."""
    from llm_engineering.settings import Settings

    data_dir = Path(os.environ.get("BENCH_DATA_DIR", "/tmp/llm-twin-bench-extraction"))
    update: dict = {"crawler_domain_delay_s": 0.0}
    if timeout_s is not None:
        update["crawler_timeout_s"] = timeout_s
    return Settings(data_dir=data_dir).model_copy(update=update)


# ---------------------------------------------------------------------------------------------------- report
def print_summary(report: dict) -> None:
    names = list(report["extractors"])
    for name, why in report.get("skipped", {}).items():
        print(f"skipped {name}: {why}")
    print(f"\nExtraction on {report['pages']} real pages ({report['machine']['cpu']})")
    header = f"{'extractor':<26}{'titles':>10}{'sentences':>13}{'recall':>9}{'dups':>6}{'leaks':>8}{'errors':>8}"
    print(header)
    print("-" * len(header))
    for name in names:
        t = report["extractors"][name]["totals"]
        print(
            f"{name:<26}{t['titles_ok']:>5}/{t['pages']:<4}{t['sentences_found']:>7}/{t['sentences_expected']:<5}"
            f"{t['sentence_recall']:>9.1%}{t['duplicated_sentences']:>6}{t['chrome_leaked']:>4}/{t['chrome_checked']:<3}"
            f"{t['errors']:>8}"
        )
    for name in names:
        rows = report["extractors"][name]["pages"]
        bad = [r for r in rows if r["error"] or not r["title_ok"] or r["sentences_missing"] or r["duplicated"]]
        if not bad:
            continue
        print(f"\n{name}: pages with a miss")
        for r in bad:
            parts = []
            if r["error"]:
                parts.append(f"error {r['error'][:90]}")
            if not r["title_ok"]:
                parts.append(f"title {r['title_found'][:60]!r}")
            if r["sentences_missing"]:
                parts.append(f"{len(r['sentences_missing'])} sentence(s) missing")
            if r["duplicated"]:
                parts.append(f"{len(r['duplicated'])} duplicated")
            if r["chrome_leaked"]:
                parts.append(f"{len(r['chrome_leaked'])} chrome leaked")
            print(f"  {r['id']:<48} " + "; ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=Path, default=PAGES_DIR)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--extractors",
        default=",".join([*CRAWLER_MODES, *EXTRACTORS]),
        help=f"comma-separated, from: {', '.join([*CRAWLER_MODES, *EXTRACTORS])}",
    )
    parser.add_argument("--page", action="append", help="only this page id (repeatable)")
    parser.add_argument("--timeout", type=float, default=None, help="crawler timeout per page (s); default: settings")
    parser.add_argument(
        "--wcxb",
        type=Path,
        default=None,
        help="a checkout of Murrough-Foley/web-content-extraction-benchmark: adds the held-out check on its articles",
    )
    parser.add_argument("--wcxb-split", default=HELDOUT_DEFAULT_SPLIT, help="comma-separated WCXB splits (test, dev)")
    args = parser.parse_args(argv)

    pages = load_pages(args.pages, set(args.page) if args.page else None)
    if not pages:
        parser.error("no pages selected")
    chosen = [name.strip() for name in args.extractors.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in CRAWLER_MODES and name not in EXTRACTORS]
    if unknown:
        parser.error(f"unknown extractor(s): {', '.join(unknown)}")

    by_id = {page.id: page for page in pages}
    report: dict = {
        "benchmark": "extraction_real_pages",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "load_avg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "platform": platform.platform(),
        },
        "versions": versions(),
        "pages": len(pages),
        "pages_by_platform": dict(Counter(page.platform for page in pages)),
        "normalisation": normalise_text.__doc__,
        "extractors": {},
    }
    with serve(args.pages) as base_url:
        for name in chosen:
            missing = missing_modules(name)
            if missing:
                print(f"skipping {name}: not installed ({', '.join(missing)})", file=sys.stderr, flush=True)
                report.setdefault("skipped", {})[name] = f"missing modules: {', '.join(missing)}"
                continue
            print(f"running {name} on {len(pages)} pages ...", file=sys.stderr, flush=True)
            if name in CRAWLER_MODES:
                raw = CRAWLER_MODES[name](pages, base_url, bench_settings(args.timeout))
            else:
                raw = run_extractor(EXTRACTORS[name], pages, base_url)
            scores = [score_page(by_id[pid], *raw[pid]) for pid in by_id]
            report["extractors"][name] = {
                "kind": "crawler" if name in CRAWLER_MODES else "html",
                "totals": totals(scores, pages),
                "pages": [score.__dict__ for score in scores],
            }
    if args.wcxb is not None:
        names = [n for n in ("previous", "current", *EXTRACTORS) if n in chosen]
        splits = [split.strip() for split in args.wcxb_split.split(",") if split.strip()]
        report["heldout"] = {split: heldout_report(args.wcxb, split, names) for split in splits}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print_summary(report)
    for held in report.get("heldout", {}).values():
        print(f"\nHeld-out: {held['pages']} WCXB {held['split']} article pages (HTML only)")
        for name, t in held["extractors"].items():
            print(
                f"{name:<26} P {t['precision']:.3f} R {t['recall']:.3f} F1 {t['f1']:.3f}  with {t['with_found']}"
                f"  leaked {t['without_leaked']}  titles {t['titles_ok']}  errors {t['errors']}"
            )
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
