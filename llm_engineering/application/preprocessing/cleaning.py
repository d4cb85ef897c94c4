"""Cleaning that keeps meaning: one cleaner per data category, chosen from one registry.

Prose (articles, posts): unicode and whitespace normalised, page boilerplate (subscribe / share / footer /
navigation lines) dropped, paragraph boundaries, fenced code blocks and URLs kept verbatim.
Code (repositories): files kept byte-for-byte apart from line endings and invisible characters; each file is
introduced by a `FILE_HEADER` line so the chunker can split on file boundaries again.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

from llm_engineering.domain.chunks import CleanedDocument
from llm_engineering.domain.documents import RawDocument
from llm_engineering.domain.types import DataCategory

# Invisible characters that only confuse tokenizers (zero-width space/joiners, BOM, soft hyphen).
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HSPACE = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")
_FENCE = re.compile(r"^\s*(```|~~~)")

# A whole line that is page furniture rather than the author's words. Anchored, with short wildcards, and only
# applied to short lines, so a sentence that merely starts with "Subscribe to ..." is kept.
_BOILERPLATE_MAX_CHARS = 120
_BOILERPLATE_LINES = (
    r"subscribe|sign up|sign in|log in|follow|share|like|comment|repost|send|reply|listen|save|clap",
    r"get the app|open in app|read more|see more|show more|load more|more from .{0,40}|top highlight",
    r"member-only story|recommended from medium|responses? \(\d+\)|write a response|back to top",
    r"skip to (?:main )?content|menu|home|privacy(?: policy)?|terms(?: of (?:service|use))?",
    r"cookie (?:policy|settings)|accept(?: all)? cookies|discover more from .{0,40}|written by .{0,60}",
    r"already have an account\?.*",
    r"share this (?:post|article|story)|thanks for reading.*|(?:subscribe|sign up) (?:to|for) .{0,40}",
    r"click here to subscribe.*|follow (?:me|us) on .{0,40}|originally published (?:at|on) .*",
    r"(?:copyright )?(?:©|\(c\)).*|all rights reserved.*|\d+ min read",
    r"\d+(?:\.\d+)?k? (?:likes?|comments?|reposts?|claps?|followers?|reactions?)",
    r"(?:like|comment|repost|send|share)(?:\s+(?:like|comment|repost|send|share))+",
)
_BOILERPLATE = re.compile(r"^(?:" + "|".join(_BOILERPLATE_LINES) + r")[\s.!:·|•-]*$", re.IGNORECASE)

# Paths whose content is not the author's code (lock files, minified bundles, vendored data).
_SKIPPED_SUFFIXES = (".lock", ".min.js", ".min.css", ".map", ".svg", ".png", ".jpg", ".jpeg", ".gif", ".ico", ".pdf")
_SKIPPED_NAMES = {"package-lock.json", "yarn.lock", "poetry.lock", "uv.lock", "pnpm-lock.yaml", "Cargo.lock"}
_SKIPPED_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", "dist", "build", ".idea", ".vscode"}

FILE_HEADER = "### File: {path}"
FILE_HEADER_RE = re.compile(r"^### File: (?P<path>.+)$", re.MULTILINE)

# Content keys that are metadata, not text (Handbook and this project's formats).
_NON_TEXT_KEYS = {"platform", "language", "image", "link", "url", "author_id", "id"}


def normalize_unicode(text: str, form: str = "NFKC") -> str:
    text = unicodedata.normalize(form, text.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROL.sub("", text.translate(_INVISIBLE))


def is_boilerplate(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and len(stripped) <= _BOILERPLATE_MAX_CHARS and bool(_BOILERPLATE.match(stripped))


def clean_prose(text: str) -> str:
    """Normalise prose; keep paragraphs, fenced code blocks (verbatim) and URLs."""
    text = normalize_unicode(text)
    out: list[str] = []
    in_code = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            out.append(line.rstrip())
            continue
        if in_code:
            out.append(line.rstrip())  # indentation is meaning inside code
            continue
        line = _HSPACE.sub(" ", line).strip()
        if is_boilerplate(line):
            continue
        out.append(line)
    cleaned = "\n".join(out)
    return _MANY_BLANK_LINES.sub("\n\n", cleaned).strip()


def clean_code(text: str) -> str:
    """Code is kept as written; only line endings, invisible characters and trailing blanks change."""
    text = normalize_unicode(text, form="NFC")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def keep_repository_file(path: str) -> bool:
    parts = PurePosixPath(path).parts
    name = parts[-1] if parts else path
    if name in _SKIPPED_NAMES or any(p in _SKIPPED_DIRS for p in parts[:-1]):
        return False
    return not name.lower().endswith(_SKIPPED_SUFFIXES)


def _text_values(content: dict, skip: Iterable[str]) -> list[str]:
    skipped = {k.lower() for k in skip} | _NON_TEXT_KEYS
    values: list[str] = []
    for key, value in content.items():
        if key.lower() in skipped:
            continue
        if isinstance(value, str) and value.strip():
            values.append(value)
        elif isinstance(value, dict):  # Handbook posts nest {"text": ..., "image": ...}
            values.extend(_text_values(value, ()))
    return values


def _clean_article(document: RawDocument) -> tuple[str, str]:
    title = clean_prose(document.title)
    content = document.content
    body_keys = [k for k in ("Subtitle", "subtitle", "Content", "content", "text") if isinstance(content.get(k), str)]
    parts = [content[k] for k in body_keys] or _text_values(content, skip=("Title", "title"))
    return title, clean_prose("\n\n".join(parts))


def _clean_post(document: RawDocument) -> tuple[str, str]:
    text = clean_prose("\n\n".join(_text_values(document.content, skip=("Title", "title"))))
    title = clean_prose(document.title) if document.title != document.link else _first_words(text)
    return title, text


def _clean_repository(document: RawDocument) -> tuple[str, str]:
    name = getattr(document, "name", None) or document.title
    files = []
    for path in sorted(document.content):
        value = document.content[path]
        if not isinstance(value, str) or not keep_repository_file(path):
            continue
        code = clean_code(value)
        if code.strip():
            files.append(FILE_HEADER.format(path=path) + "\n" + code)
    return str(name), "\n\n".join(files)


def _first_words(text: str, n: int = 12) -> str:
    words = text.split()
    return " ".join(words[:n]) + (" …" if len(words) > n else "")


CleanerFn = Callable[[RawDocument], tuple[str, str]]

# One registry: category -> (title, text) cleaner.
CLEANERS: dict[DataCategory, CleanerFn] = {
    DataCategory.ARTICLES: _clean_article,
    DataCategory.POSTS: _clean_post,
    DataCategory.REPOSITORIES: _clean_repository,
}


def clean_document(document: RawDocument) -> CleanedDocument:
    try:
        cleaner = CLEANERS[document.category]
    except KeyError as exc:
        raise ValueError(f"no cleaner for category {document.category!r}") from exc
    title, text = cleaner(document)
    return CleanedDocument(
        id=document.id,
        category=document.category,
        author_id=document.author_id,
        author_full_name=document.author_full_name,
        platform=document.platform,
        link=document.link,
        title=title or document.link,
        text=text,
        source_hash=document.content_hash,
    )


def split_repository_files(text: str) -> list[tuple[str, str]]:
    """Inverse of the repository cleaner: [(path, code)] in order."""
    matches = list(FILE_HEADER_RE.finditer(text))
    if not matches:
        return [("", text)] if text.strip() else []
    files = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        code = text[match.end() + 1 : end].rstrip("\n")
        files.append((match.group("path"), code))
    return files
