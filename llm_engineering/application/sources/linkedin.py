"""LinkedIn's data export ("Get a copy of your data"; zip or folder): `Shares.csv` posts, `Articles/Articles/*.html`.

- `Shares.csv` (columns Date, ShareLink, ShareCommentary, SharedUrl, MediaUrl, Visibility): one post per row,
  the commentary (quoted, multi-line) as the post's text, `ShareLink` as its link (the link a crawl of the post
  would store, once normalised). A row without commentary (a bare reshare) has no words of the author's and is
  skipped; so is a row without a link.
- `Articles/Articles/*.html`: one Pulse article per file: the title in `h1` (its link is the article's public
  address; `<title>` when there is no `h1`), `p.created` / `p.published` with their dates, then the body. An
  article without a publication date or without a public link is a draft: skipped unless `include_drafts`.
"""

from __future__ import annotations

import re

from tqdm.auto import tqdm

from llm_engineering.application.crawlers.extraction import PageHints, parse_html
from llm_engineering.application.sources.archive import ArchiveTree
from llm_engineering.application.sources.common import (
    ReadContext,
    article,
    extract,
    iso_day,
    post,
    read_csv,
    short_title,
)
from llm_engineering.application.sources.report import Item
from llm_engineering.domain.errors import ImportFormatError
from llm_engineering.domain.types import Platform

SHARES_FILE = "Shares.csv"
SHARES_COLUMNS = ("Date", "ShareLink", "ShareCommentary")
ARTICLES_DIR = re.compile(r"(^|/)Articles/(Articles/)?[^/]+\.html?$", re.IGNORECASE)
LINKEDIN_EXPORT_HINTS = PageHints(
    content=("body > div", "body"),
    title=("h1",),
    chrome=("p.created", "p.published"),
    site_names=("LinkedIn",),
)


def find_shares(tree: ArchiveTree) -> str | None:
    return next((f for f in tree.files() if f.rsplit("/", 1)[-1].lower() == SHARES_FILE.lower()), None)


def find_articles(tree: ArchiveTree) -> list[str]:
    return [f for f in tree.files() if ARTICLES_DIR.search(f)]


def read_linkedin(tree: ArchiveTree, ctx: ReadContext) -> list[Item]:
    shares, articles = find_shares(tree), find_articles(tree)
    if shares is None and not articles:
        raise ImportFormatError(tree.location, "neither Shares.csv nor Articles/: not a LinkedIn data export")
    items: list[Item] = []
    if shares is not None:
        items += read_shares(tree, shares, ctx)
    for name in tqdm(articles, desc=f"Reading LinkedIn articles {tree.location}", disable=not ctx.show_progress):
        items.append(read_article(tree, name, ctx))
    return items


def read_shares(tree: ArchiveTree, name: str, ctx: ReadContext) -> list[Item]:
    items = []
    for where, row in read_csv(tree, name, SHARES_COLUMNS):
        text = row["ShareCommentary"].replace("\r\n", "\n").strip()
        link = row["ShareLink"].strip()
        if not link.startswith(("http://", "https://")):
            items.append(Item("linkedin", where, skipped="no share link (ShareLink)"))
            continue
        if not text:
            items.append(Item("linkedin", where, skipped="no text of the author's own (a reshare without commentary)"))
            continue
        media = row.get("MediaUrl", "").strip()
        content = {"Content": text, "Title": short_title(text), "published": iso_day(row["Date"])}
        document = post(ctx, Platform.LINKEDIN, link, content, media if media.startswith("http") else None)
        items.append(Item("linkedin", where, document=document, title=content["Title"]))
    return items


def read_article(tree: ArchiveTree, name: str, ctx: ReadContext) -> Item:
    where = tree.where(name)
    soup = parse_html(tree.read_bytes(name))
    if soup.body is None:
        raise ImportFormatError(where, "no <body>: not a LinkedIn article export")
    heading = soup.find("h1") or soup.find("title")
    title = " ".join(heading.get_text(" ").split()) if heading is not None else ""
    anchor = heading.find("a", href=True) if heading is not None else None
    link = str(anchor["href"]).strip() if anchor else ""
    published = soup.select_one("p.published")
    day = iso_day(published.get_text(" ")) if published else None
    if not (day and link.startswith("http")):
        if not ctx.spec.include_drafts:
            return Item("linkedin", where, skipped="unpublished article (--include-drafts imports drafts)", title=title)
        link = link if link.startswith("http") else f"linkedin-export:Articles/{name.rsplit('/', 1)[-1]}"
    content = extract(soup, where, link, LINKEDIN_EXPORT_HINTS)
    if day:
        content["published"] = day
    return Item("linkedin", where, document=article(ctx, Platform.LINKEDIN, link, content), title=content["Title"])
