"""A folder of notes: Markdown (`.md`, `.markdown`), HTML (`.html`, `.htm`) and plain text (`.txt`) files.

- Markdown: YAML front matter (read by python-frontmatter) may give `title`, `date`, `canonical_url` (or `link`,
  `url`) and `draft: true` / `published: false` (skipped unless `include_drafts`); without a title the first
  `# heading` is the title (and is not repeated in the body), else the file name. The body is stored as written
  (it already is Markdown, the form the crawlers store).
- HTML: read with the crawlers' article extraction (title, body, date).
- Plain text: the file name is the title, the text the body.

The link is the front matter's canonical address, so importing a note that is also published, then crawling
the published page, stores one document; a note without one is `note:<folder name>/<relative path>`.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import frontmatter
import yaml
from tqdm.auto import tqdm

from llm_engineering.application.crawlers.extraction import repeats_body
from llm_engineering.application.sources.archive import ArchiveTree
from llm_engineering.application.sources.common import ReadContext, article, extract, iso_day, platform_of
from llm_engineering.application.sources.report import Item
from llm_engineering.domain.errors import ImportFormatError

MARKDOWN = (".md", ".markdown")
HTML = (".html", ".htm")
TEXT = (".txt",)
NOTE_SUFFIXES = MARKDOWN + HTML + TEXT
_HEADING = re.compile(r"^\s*#\s+(.+?)\s*#*\s*$")
LINK_KEYS = ("canonical_url", "canonical", "link", "url")


def note_files(tree: ArchiveTree) -> list[str]:
    return [f for f in tree.files() if f.lower().endswith(NOTE_SUFFIXES) and not f.lower().startswith("readme")]


def read_notes(tree: ArchiveTree, ctx: ReadContext, folder_name: str) -> list[Item]:
    files = note_files(tree)
    if not files:
        raise ImportFormatError(tree.location, f"no notes ({', '.join(NOTE_SUFFIXES)} files) and no known export")
    items = []
    for name in tqdm(files, desc=f"Reading notes {tree.location}", unit="note", disable=not ctx.show_progress):
        items.append(read_note(tree, name, ctx, folder_name))
    return items


def _title_from_name(name: str) -> str:
    stem = PurePosixPath(name).stem
    stem = re.sub(r"^\d{4}-\d{2}-\d{2}[-_ ]", "", stem)
    return " ".join(re.sub(r"[-_]+", " ", stem).split()).strip() or stem


def read_note(tree: ArchiveTree, name: str, ctx: ReadContext, folder_name: str) -> Item:
    where = tree.where(name)
    lowered = name.lower()
    default_link = f"note:{folder_name}/{name}"
    if lowered.endswith(HTML):
        link = default_link
        content = extract(tree.read_bytes(name), where, link)
        if not content["Title"]:
            content["Title"] = _title_from_name(name)
        return Item("folder", where, document=article(ctx, platform_of(link), link, content), title=content["Title"])
    text = tree.read_text(name).replace("\r\n", "\n")
    meta: dict[str, Any] = {}
    if lowered.endswith(MARKDOWN):
        try:
            meta, text = frontmatter.parse(text)
        except yaml.YAMLError as exc:
            raise ImportFormatError(where, f"invalid YAML front matter: {exc}") from exc
        if not isinstance(meta, dict):
            raise ImportFormatError(where, "front matter must be a mapping (key: value lines)")
    title = str(meta.get("title") or "").strip()
    if (meta.get("draft") is True or meta.get("published") is False) and not ctx.spec.include_drafts:
        return Item("folder", where, skipped="draft in its front matter (--include-drafts imports drafts)")
    body = text.strip()
    if lowered.endswith(MARKDOWN) and not title:
        first, _, rest = body.partition("\n")
        match = _HEADING.match(first)
        if match:
            title, body = match.group(1).strip(), rest.strip()
    title = title or _title_from_name(name)
    if not body:
        return Item("folder", where, skipped="no text", title=title)
    link = next((str(meta[k]).strip() for k in LINK_KEYS if str(meta.get(k) or "").startswith("http")), default_link)
    subtitle = str(meta.get("subtitle") or meta.get("description") or "").strip()
    if repeats_body(subtitle, body):
        subtitle = ""
    content: dict[str, Any] = {"Title": title, "Subtitle": subtitle, "Content": body}
    day = iso_day(meta.get("date"))
    if day:
        content["published"] = day
    return Item("folder", where, document=article(ctx, platform_of(link), link, content), title=title)
