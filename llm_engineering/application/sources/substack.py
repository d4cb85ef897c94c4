"""Substack's export (Settings → Export; zip or folder): `posts.csv` + `posts/<post_id>.html`.

`posts.csv` lists every post (post_id, post_date, is_published, type, audience, title, subtitle, ...); the body
of each is `posts/<post_id>.html`, the post's HTML without the page around it. A post whose `is_published` is not
true is unpublished and skipped unless `include_drafts`. `post_id` is `<number>.<slug>`; the export carries no
public address, so the link is `<site_url>/p/<slug>` with `--site-url https://NAME.substack.com` (or the
newsletter's own domain), as a crawl of the post would store it. Without it the link is `substack-export:<slug>`
(and a warning says a later crawl of the post will not recognise it). The subscriber lists in the export are
never read.
"""

from __future__ import annotations

from loguru import logger
from tqdm.auto import tqdm

from llm_engineering.application.crawlers.article import SUBSTACK_HINTS
from llm_engineering.application.sources.archive import ArchiveTree
from llm_engineering.application.sources.common import (
    ReadContext,
    article,
    extract,
    iso_day,
    page_from_fragment,
    read_csv,
)
from llm_engineering.application.sources.report import Item
from llm_engineering.domain.errors import ImportFormatError
from llm_engineering.domain.types import Platform

POSTS_FILE = "posts.csv"
POSTS_COLUMNS = ("post_id", "is_published", "title")
TRUE = {"true", "t", "1", "yes"}


def read_substack(tree: ArchiveTree, ctx: ReadContext) -> list[Item]:
    if POSTS_FILE not in tree.files():
        raise ImportFormatError(tree.location, "no posts.csv: not a Substack export")
    site = (ctx.spec.site_url or "").strip().rstrip("/")
    if site and not site.startswith(("http://", "https://")):
        site = f"https://{site}"
    if not site:
        logger.warning(
            f"{tree.location}: a Substack export carries no public address; pass --site-url "
            "https://NAME.substack.com so the links match the site (using substack-export:<slug> links)"
        )
    files = set(tree.files())
    rows = list(read_csv(tree, POSTS_FILE, POSTS_COLUMNS))
    items = []
    for where, row in tqdm(rows, desc=f"Reading Substack {tree.location}", unit="post", disable=not ctx.show_progress):
        post_id = row["post_id"].strip()
        title = row["title"].strip()
        if not post_id:
            raise ImportFormatError(where, "empty post_id")
        if row["is_published"].strip().lower() not in TRUE and not ctx.spec.include_drafts:
            items.append(Item("substack", where, skipped="unpublished (--include-drafts imports drafts)", title=title))
            continue
        body_file = f"posts/{post_id}.html"
        if body_file not in files:
            raise ImportFormatError(where, f"its body {tree.where(body_file)} is missing from the export")
        body = tree.read_text(body_file)
        if not body.strip():
            items.append(Item("substack", where, skipped=f"{body_file} is empty (no text)", title=title))
            continue
        slug = post_id.split(".", 1)[1] if "." in post_id else post_id
        link = f"{site}/p/{slug}" if site else f"substack-export:{slug}"
        page = page_from_fragment(body, title, row.get("subtitle", "").strip())
        content = extract(page, tree.where(body_file), link, SUBSTACK_HINTS)
        day = iso_day(row.get("post_date"))
        if day:
            content["published"] = day
        items.append(Item("substack", where, document=article(ctx, Platform.SUBSTACK, link, content), title=title))
    return items
