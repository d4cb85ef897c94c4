"""RSS 2.0 and Atom 1.0 feeds, from a file or an http(s) URL, parsed by feedparser.

An item's text is its full content when the feed carries it (RSS `content:encoded`, Atom `content`), read with
the crawlers' article extraction. A feed of summaries only (RSS `description`, Atom `summary`) cannot give the
whole text: those items are crawled from their links by the existing crawlers (the report notes it), so the
stored document is the one a crawl stores. Items by another author (`author` / `dc:creator` naming someone else,
as in a publication's feed) are skipped. Medium's feed footer ("... was originally published in ... on Medium")
and tracking pixels are dropped.
"""

from __future__ import annotations

import io
import re
from typing import Any

import feedparser
from bs4 import BeautifulSoup

from llm_engineering.application.crawlers.article import SUBSTACK_HINTS
from llm_engineering.application.crawlers.extraction import GENERIC_HINTS, PageHints, parse_html
from llm_engineering.application.crawlers.links import normalize_link
from llm_engineering.application.sources.common import (
    ReadContext,
    article,
    extract,
    iso_day,
    page_from_fragment,
    platform_of,
    text_paragraphs_html,
)
from llm_engineering.application.sources.report import Item
from llm_engineering.domain.documents import normalize_full_name
from llm_engineering.domain.errors import ImportFormatError
from llm_engineering.domain.types import Platform

_MEDIUM_FOOTER = re.compile(r"was originally published in .{0,300} on Medium", re.IGNORECASE | re.DOTALL)


def parse_feed(data: bytes, where: str, wanted: str = "auto") -> tuple[str, Any]:
    """('rss' | 'atom', the parsed feed). Not XML, or XML that is neither RSS nor Atom, is an error naming `where`.
    Relative links in a feed fetched from a URL are resolved against that URL."""
    headers = {"content-location": where} if where.startswith(("http://", "https://")) else None
    parsed = feedparser.parse(
        io.BytesIO(data), sanitize_html=True, resolve_relative_uris=True, response_headers=headers
    )
    version = parsed.get("version") or ""
    if not version:
        problem = parsed.get("bozo_exception")
        detail = f": {problem}" if problem else ""
        raise ImportFormatError(where, f"not an RSS or Atom feed{detail}")
    kind = "atom" if version.startswith("atom") else "rss"
    if wanted in ("rss", "atom") and wanted != kind:
        raise ImportFormatError(where, f"an {kind.upper()} feed ({version}), not {wanted.upper()} as asked")
    if parsed.get("bozo") and not parsed.entries:
        raise ImportFormatError(where, f"a broken feed: {parsed.get('bozo_exception')}")
    return kind, parsed


def read_feed(data: bytes, where: str, ctx: ReadContext, wanted: str = "auto") -> tuple[str, list[Item], list[str]]:
    """(format, items, notes). Items of a summary-only feed carry the link to crawl instead of a document."""
    kind, parsed = parse_feed(data, where, wanted)
    items: list[Item] = []
    summaries_only = 0
    for index, entry in enumerate(parsed.entries, start=1):
        origin = f"{where} item {index}"
        title = " ".join(str(entry.get("title", "")).split())
        link = str(entry.get("link") or "").strip()
        if not link.startswith(("http://", "https://")):
            entry_id = str(entry.get("id") or "")
            link = entry_id if entry_id.startswith(("http://", "https://")) else ""
        if not link:
            items.append(Item(kind, origin, skipped="no link (an item needs its public address)", title=title))
            continue
        writer = _entry_author(entry)
        if writer and normalize_full_name(writer).casefold() != ctx.author.full_name.casefold():
            items.append(Item(kind, origin, skipped=f"written by {writer}, not {ctx.author.full_name}", title=title))
            continue
        body = _full_content(entry)
        if body is None:
            summaries_only += 1
            items.append(Item(kind, origin, crawl=normalize_link(link), title=title))
            continue
        platform = platform_of(link)
        hints = SUBSTACK_HINTS if platform is Platform.SUBSTACK else GENERIC_HINTS
        page = parse_html(page_from_fragment(body, title))
        _drop_feed_chrome(page)
        content = extract(page, origin, link, _with_title(hints))
        day = iso_day(entry.get("published_parsed") or entry.get("updated_parsed"))
        if day:
            content["published"] = day
        items.append(Item(kind, origin, document=article(ctx, platform, link, content), title=content["Title"]))
    notes = []
    if summaries_only:
        notes.append(
            f"{where}: {summaries_only} item(s) carry a summary only (no content:encoded / <content>); "
            "their links were crawled with the crawlers for the whole text"
        )
    return kind, items, notes


def _with_title(hints: PageHints) -> PageHints:
    """The page built around a feed item has its title in h1.post-title: read it first."""
    return PageHints(
        content=hints.content or (".available-content .body",),
        chrome=hints.chrome,
        title=("h1.post-title", *hints.title),
        subtitle=hints.subtitle,
        site_names=hints.site_names,
    )


def _entry_author(entry: Any) -> str:
    name = entry.get("author_detail", {}).get("name") if entry.get("author_detail") else None
    name = name or entry.get("author") or ""
    name = re.sub(r"\S+@\S+\s*\((.*)\)", r"\1", str(name)).strip()  # RSS <author>: "ada@x.org (Ada Lovelace)"
    return "" if "@" in name else name


def _full_content(entry: Any) -> str | None:
    """The item's full body as HTML (RSS content:encoded, Atom content), or None when it has a summary only."""
    for part in entry.get("content") or []:
        value = str(part.get("value") or "")
        if value.strip():
            kind = str(part.get("type") or "")
            return text_paragraphs_html(value) if kind == "text/plain" else value
    return None


def _drop_feed_chrome(page: BeautifulSoup) -> None:
    for img in page.select("img[width='1'], img[height='1']"):  # tracking pixels
        img.decompose()
    for paragraph in page.find_all("p"):
        if _MEDIUM_FOOTER.search(paragraph.get_text(" ")):
            previous = paragraph.find_previous_sibling()
            if previous is not None and previous.name == "hr":
                previous.decompose()
            paragraph.decompose()
