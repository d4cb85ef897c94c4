"""What every format reader shares: the read context, documents built like the crawlers', CSV rows, HTML bodies."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bs4 import BeautifulSoup

from llm_engineering.application.crawlers.dispatcher import host_of
from llm_engineering.application.crawlers.extraction import GENERIC_HINTS, PageHints, extract_article, parse_html
from llm_engineering.application.crawlers.links import normalize_link
from llm_engineering.application.sources.archive import ArchiveTree
from llm_engineering.application.sources.report import SourceSpec
from llm_engineering.domain.documents import ArticleDocument, PostDocument, RawDocument, UserDocument
from llm_engineering.domain.errors import CrawlError, ImportFormatError
from llm_engineering.domain.types import Platform

# Long LinkedIn commentaries and Substack bodies exceed the csv module's default 128 KiB field limit.
CSV_FIELD_LIMIT = 16 * 1024 * 1024
TITLE_CHARS = 90


@dataclass
class ReadContext:
    """Who the writing is attributed to and how to read it."""

    author: UserDocument
    spec: SourceSpec
    show_progress: bool = False


def platform_of(link: str) -> Platform:
    """The platform a crawl of `link` would record (the dispatcher routes by domain; everything else is a blog)."""
    host = host_of(link) if "://" in link else ""
    for platform in (Platform.MEDIUM, Platform.SUBSTACK, Platform.LINKEDIN):
        if host == f"{platform.value}.com" or host.endswith(f".{platform.value}.com"):
            return platform
    return Platform.BLOG


def build_document(
    cls: type[RawDocument], ctx: ReadContext, platform: Platform, link: str, content: dict[str, Any], **extra: Any
) -> RawDocument:
    """A document exactly as a crawler builds it (normalised link, same fields), attributed to the import's author."""
    return cls(
        author_id=ctx.author.id,
        author_full_name=ctx.author.full_name,
        platform=platform.value,
        link=normalize_link(link),
        content={k: v for k, v in content.items() if v is not None},
        **extra,
    )


def article(ctx: ReadContext, platform: Platform, link: str, content: dict[str, Any]) -> RawDocument:
    return build_document(ArticleDocument, ctx, platform, link, content)


def post(ctx: ReadContext, platform: Platform, link: str, content: dict[str, Any], image: str | None) -> RawDocument:
    return build_document(PostDocument, ctx, platform, link, content, image=image)


def extract(
    page: BeautifulSoup | bytes | str, where: str, link: str, hints: PageHints = GENERIC_HINTS
) -> dict[str, str]:
    """The crawlers' article extraction (trafilatura + hints + Markdown + text once) on an exported page."""
    soup = page if isinstance(page, BeautifulSoup) else parse_html(page)
    url = link if link.startswith(("http://", "https://")) else None
    try:
        return extract_article(soup, link, url or "", hints)
    except CrawlError as exc:
        raise ImportFormatError(where, f"{exc.reason} (an HTML file without a body?)") from exc


def page_from_fragment(body_html: str, title: str, subtitle: str = "", body_class: str = "") -> str:
    """A whole page around an exported body fragment, shaped like the platform's own page, so the crawlers'
    extraction reads it the way it reads the live page."""
    head = f"<title>{html.escape(title)}</title>"
    heading = f'<h1 class="post-title">{html.escape(title)}</h1>' if title else ""
    sub = f'<h3 class="subtitle">{html.escape(subtitle)}</h3>' if subtitle else ""
    return (
        f"<html><head><meta charset='utf-8'>{head}</head><body><article>{heading}{sub}"
        f'<div class="available-content"><div class="{body_class or "body markup"}">{body_html}</div></div>'
        "</article></body></html>"
    )


def text_paragraphs_html(text: str) -> str:
    """Plain text (blank-line paragraphs, line breaks) as HTML paragraphs."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]
    return "".join(f"<p>{html.escape(p.strip()).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def short_title(text: str, limit: int = TITLE_CHARS) -> str:
    """A title for writing that has none (a LinkedIn post): its first line, cut at a word."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) <= limit:
        return first
    cut = first[:limit].rsplit(" ", 1)[0].rstrip(",;:-")
    return f"{cut}…"


def iso_day(value: Any) -> str | None:
    """'2024-03-01' from a datetime, a date, a time.struct_time or an ISO-ish string; None if none parses."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    if hasattr(value, "tm_year"):
        return f"{value.tm_year:04d}-{value.tm_mon:02d}-{value.tm_mday:02d}"
    match = re.search(r"(\d{4})-(\d{2})-(\d{2})", str(value))
    return "-".join(match.groups()) if match else None


def read_csv(tree: ArchiveTree, name: str, required: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """Rows of a CSV file as (where, row): `where` names the file, the row and its line ('Shares.csv row 3 (line
    7)'). The header must hold every `required` column, else the error lists what is missing and what is there."""
    where_file = tree.where(name)
    text = tree.read_text(name)
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in reader.fieldnames or []]
    except csv.Error as exc:
        raise ImportFormatError(where_file, f"not a readable CSV header ({exc})") from exc
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportFormatError(
            where_file,
            f"wrong columns: missing {', '.join(missing)}; found {', '.join(header) or 'no header'} "
            f"(expected at least {', '.join(required)})",
        )
    reader.fieldnames = header
    number = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFormatError(
                f"{where_file} row {number + 1} (line {reader.line_num})", f"bad CSV: {exc}"
            ) from exc
        number += 1
        where = f"{where_file} row {number} (line {reader.line_num})"
        if None in row:  # more fields than columns
            raise ImportFormatError(where, f"{len(header) + len(row[None])} fields for {len(header)} columns")
        yield where, {k: (v or "") for k, v in row.items()}
