"""Which format a path holds: a feed URL, a feed file, or an export (zip / folder) by the files it contains."""

from __future__ import annotations

from llm_engineering.application.sources.archive import ArchiveTree, SingleFileTree
from llm_engineering.application.sources.linkedin import find_articles, find_shares
from llm_engineering.application.sources.notes import note_files
from llm_engineering.application.sources.substack import POSTS_FILE
from llm_engineering.domain.errors import ImportFormatError

FEED_SUFFIXES = (".xml", ".rss", ".atom", ".feed")
_SNIFF_BYTES = 2048


def is_url(path: str) -> bool:
    return path.strip().lower().startswith(("http://", "https://"))


def looks_like_feed(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<?xml") or b"<rss" in text or b"<feed" in text or b"<rdf:rdf" in text


def export_root(tree: ArchiveTree) -> str:
    """The folder inside an export that holds its files: '' or the one folder everything is wrapped in."""
    files = tree.files()
    tops = {f.split("/", 1)[0] for f in files}
    if len(tops) == 1 and all("/" in f for f in files):
        return tops.pop()
    return ""


def detect_export(tree: ArchiveTree) -> str:
    """'medium' | 'substack' | 'linkedin' | 'folder' | 'feed' for a tree (already narrowed to its root)."""
    files = tree.files()
    if isinstance(tree, SingleFileTree):
        name = files[0].lower()
        if name.endswith(FEED_SUFFIXES) or looks_like_feed(tree.read_bytes(files[0])[:_SNIFF_BYTES]):
            return "feed"
        return "folder"
    if POSTS_FILE in files:
        return "substack"
    if find_shares(tree) is not None or find_articles(tree):
        return "linkedin"
    posts = [f for f in files if f.startswith("posts/") and f.lower().endswith(".html")]
    if posts and ("profile/profile.html" in files or b"h-entry" in tree.read_bytes(posts[0])[: _SNIFF_BYTES * 4]):
        return "medium"
    if note_files(tree):
        return "folder"
    raise ImportFormatError(
        tree.location,
        "no known export found: expected Medium's posts/*.html, LinkedIn's Shares.csv or Articles/, Substack's "
        "posts.csv, a feed, or Markdown / HTML / text notes",
    )
