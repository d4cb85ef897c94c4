"""Medium's "Download your information" export (zip or unpacked folder): `posts/*.html`, `profile/profile.html`.

Each post is an h-entry page: the title in `h1.p-name`, the subtitle in `section[data-field=subtitle]`, the body
in `section[data-field=body]`, and a footer with the author, the publication time (`time.dt-published`) and the
canonical link (`a.p-canonical`). Rules:

- drafts (`draft_*.html`, no publication time) are skipped unless `include_drafts`;
- responses (comments on other stories) are skipped unless `include_responses`, then kept as posts. Medium
  gives a story a title block (`.graf--title`) and a response none: a post whose body has no title block is a
  response;
- the link is the canonical link; without one, `https://medium.com/@<handle>/<file slug>` from the profile's
  handle, else `https://medium.com/p/<post id>`.
"""

from __future__ import annotations

import re

from tqdm.auto import tqdm

from llm_engineering.application.crawlers.extraction import PageHints, parse_html
from llm_engineering.application.crawlers.markdown import fragment_text
from llm_engineering.application.sources.archive import ArchiveTree
from llm_engineering.application.sources.common import ReadContext, article, extract, iso_day, post, short_title
from llm_engineering.application.sources.report import Item
from llm_engineering.domain.errors import ImportFormatError
from llm_engineering.domain.types import Platform

MEDIUM_EXPORT_HINTS = PageHints(
    content=("section[data-field=body]", ".e-content"),
    title=("h1.p-name", "header h1"),
    subtitle=("section[data-field=subtitle]", ".p-summary"),
    chrome=("footer", "header"),
    site_names=("Medium",),
)
_POST_ID = re.compile(r"-([0-9a-f]{8,12})$")
_HANDLE = re.compile(r"medium\.com/@([\w.-]+)")


def profile_handle(tree: ArchiveTree) -> str | None:
    """The author's @handle from `profile/profile.html` (used where a post has no canonical link)."""
    if "profile/profile.html" not in tree.files():
        return None
    soup = parse_html(tree.read_bytes("profile/profile.html"))
    for anchor in soup.select("a[href]"):
        match = _HANDLE.search(str(anchor["href"]))
        if match:
            return match.group(1)
    match = re.search(r"@([\w.-]+)", soup.get_text(" "))
    return match.group(1) if match else None


def read_medium(tree: ArchiveTree, ctx: ReadContext) -> list[Item]:
    posts = [f for f in tree.files() if f.startswith("posts/") and f.lower().endswith(".html")]
    if not posts:
        raise ImportFormatError(tree.location, "no posts/*.html: not a Medium export (Download your information)")
    handle = profile_handle(tree)
    items = []
    for name in tqdm(posts, desc=f"Reading Medium {tree.location}", unit="post", disable=not ctx.show_progress):
        items.append(read_post(tree, name, ctx, handle))
    return items


def read_post(tree: ArchiveTree, name: str, ctx: ReadContext, handle: str | None) -> Item:
    where = tree.where(name)
    stem = name.rsplit("/", 1)[-1][: -len(".html")]
    soup = parse_html(tree.read_bytes(name))
    body = soup.select_one("section[data-field=body], .e-content")
    if body is None:
        raise ImportFormatError(where, "no post body (section[data-field=body]): not a Medium export post")
    title = soup.select_one("h1.p-name") or soup.select_one("title")
    title_text = " ".join(title.get_text(" ").split()) if title else ""
    published = soup.select_one("time.dt-published")
    is_draft = stem.startswith("draft_") or published is None
    if is_draft and not ctx.spec.include_drafts:
        return Item("medium", where, skipped="draft (--include-drafts imports drafts)", title=title_text)
    is_response = body.select_one(".graf--title") is None
    if is_response and not ctx.spec.include_responses:
        return Item("medium", where, skipped="a response to another story (--include-responses keeps them)")
    link = _link(soup, stem, handle)
    day = iso_day(published.get("datetime") if published else None)
    if is_response:
        text = fragment_text(body)
        if not text.strip():
            raise ImportFormatError(where, "an empty response")
        content = {"Content": text, "Title": short_title(text), "published": day}
        return Item("medium", where, document=post(ctx, Platform.MEDIUM, link, content, None), title=content["Title"])
    content = extract(soup, where, link, MEDIUM_EXPORT_HINTS)
    if day:
        content["published"] = day
    return Item("medium", where, document=article(ctx, Platform.MEDIUM, link, content), title=content["Title"])


def _link(soup, stem: str, handle: str | None) -> str:
    canonical = soup.select_one("a.p-canonical[href]")
    if canonical is not None and str(canonical["href"]).startswith("http"):
        return str(canonical["href"])
    slug = re.sub(r"^(draft_|\d{4}-\d{2}-\d{2}_)", "", stem).lower()
    match = _POST_ID.search(slug)
    if handle:
        return f"https://medium.com/@{handle}/{slug}"
    return f"https://medium.com/p/{match.group(1) if match else slug}"
