"""Markdown from trafilatura's extracted body, and plain text from small inline fragments (post text).

trafilatura (see `extraction.py`) selects the main content and hands back its body as a small, documented XML
vocabulary: `head` (rend=h1..h6), `p`, `list` (rend=ul/ol) / `item`, `quote`, `code`, `table` / `row` / `cell`,
`ref` (target=URL), `hi` (rend=#b/#i/#t/...), `lb`, `del`, `graphic`. Its own Markdown writer (2.3) loses
the blank lines inside code blocks, every blockquote marker and the code's language, and keeps the source's
indentation inside paragraphs; this module writes that XML as Markdown instead:

- headings `#`..`######`, paragraphs separated by blank lines, `<br>` kept as a line break;
- lists `- ` / `1. ` with nested lists and an item's further paragraphs indented under it;
- quotes `> `, tables as GitHub tables;
- code blocks fenced, their text byte-for-byte from the page's own `<pre>` when it can be matched (with the
  language of its `language-xx` class), else trafilatura's text; inline code in backticks;
- links `[text](absolute url)`; bold/italics dropped on purpose (noise for retrieval and fine-tuning).

`Block` keeps each top-level block's kind so the extractor can drop repeated text block by block.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin

from bs4 import NavigableString, Tag
from bs4.element import PreformattedString
from lxml.etree import _Element

_WS = re.compile(r"[ \t\r\n\f\v\u00a0]+")
_SPACE_AROUND_NEWLINE = re.compile(r" *\n *")
_BACKTICKS = re.compile(r"`{3,}")
_LANGUAGE_CLASS = re.compile(r"^(?:language|lang|highlight-source|brush:?)-?([\w+#.-]+)$")
_SKIPPED_LINKS = ("#", "javascript:", "mailto:", "tel:", "data:")
# Elements that are a block of their own at the top level of trafilatura's body.
_BLOCK_TAGS = frozenset({"head", "p", "list", "quote", "code", "table", "div", "ab", "note"})


@dataclass(frozen=True)
class Block:
    kind: str  # heading | paragraph | list | quote | code | table
    text: str


@dataclass(frozen=True)
class SourceCode:
    """A `<pre>` of the page as written: exact text and language (trafilatura drops both details)."""

    text: str
    language: str


def code_key(text: str) -> str:
    return re.sub(r"\s+", "", text)


def source_code_blocks(pres: Iterable[Tag]) -> dict[str, SourceCode]:
    """Index the page's `<pre>` blocks by their text without whitespace, to restore them byte-for-byte."""
    index: dict[str, SourceCode] = {}
    for pre in pres:
        pieces: list[str] = []
        for element in pre.descendants:
            if isinstance(element, NavigableString) and not isinstance(element, PreformattedString):
                pieces.append(str(element))
            elif isinstance(element, Tag) and element.name == "br":
                pieces.append("\n")
        text = "".join(pieces).lstrip("\n").rstrip()
        key = code_key(text)
        if key and key not in index:
            index[key] = SourceCode(text, _code_language(pre))
    return index


def _code_language(pre: Tag) -> str:
    for tag in [pre, *pre.find_all(True, limit=3)]:  # highlighters put the class on an inner code/span
        for cls in tag.get("class") or []:
            match = _LANGUAGE_CLASS.match(cls)
            if match:
                return match.group(1)
        lang = tag.get("data-language") or tag.get("data-lang")
        if lang:
            return str(lang).strip()
    return ""


def fence(code: str, language: str = "") -> str:
    longest = max((len(m) for m in _BACKTICKS.findall(code)), default=2)
    marks = "`" * max(3, longest + 1)
    return f"{marks}{language}\n{code}\n{marks}"


# Inline rendering marks explicit line breaks (`lb`) with BREAK; source newlines are only whitespace.
BREAK = "\x02"
_STASHED = re.compile(r"\x01(\d+)\x01")


def tidy(text: str) -> str:
    """Collapse source whitespace (newlines included) to single spaces; BREAK marks become line breaks
    (at most one blank line in a row)."""
    text = _WS.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text.replace(BREAK, "\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


class MarkdownWriter:
    """Writes trafilatura's body element as Markdown blocks (see the module doc)."""

    def __init__(self, base_url: str | None = None, code: dict[str, SourceCode] | None = None) -> None:
        self.base_url = base_url
        self.code = code or {}
        self._stash: list[str] = []  # code blocks met inside inline content, kept out of whitespace tidying

    def tidy(self, text: str) -> str:
        text = tidy(text)
        if "\x01" in text:
            text = _STASHED.sub(lambda m: self._stash[int(m.group(1))], text)
        return text

    def _keep(self, block_text: str) -> str:
        """A rendered block met inside inline content: on lines of its own, untouched by whitespace tidying."""
        self._stash.append(block_text)
        return f"{BREAK * 2}\x01{len(self._stash) - 1}\x01{BREAK * 2}"

    # --- blocks --------------------------------------------------------------------------------------------
    def blocks(self, body: _Element) -> list[Block]:
        blocks: list[Block] = []
        loose: list[str] = []  # inline content directly under the body

        def flush() -> None:
            text = self.tidy("".join(loose))
            loose.clear()
            if text:
                blocks.append(Block("paragraph", text))

        if body.text:
            loose.append(body.text)
        for child in body:
            if not isinstance(child.tag, str):  # comments, processing instructions
                if child.tail:
                    loose.append(child.tail)
                continue
            if child.tag in _BLOCK_TAGS or (child.tag == "code" and self._is_code_block(child)):
                flush()
                blocks.extend(self.block(child))
            else:
                loose.append(self.inline(child, with_tail=False))
            if child.tail:
                loose.append(child.tail)
        flush()
        return blocks

    def block(self, element: _Element) -> list[Block]:
        tag = element.tag
        if tag == "head":
            text = self.tidy(self.inline_content(element)).replace("\n", " ")
            level = _heading_level(element.get("rend"))
            return [Block("heading", f"{'#' * level} {text}")] if text else []
        if tag == "code":
            text = self.code_block(element)
            return [Block("code", text)] if text else []
        if tag == "list":
            text = self.list_text(element)
            return [Block("list", text)] if text else []
        if tag == "quote":
            children = [child for child in element if isinstance(child.tag, str)]
            if len(children) == 1 and children[0].tag == "code" and not (element.text or "").strip():
                return self.block(children[0])  # trafilatura's fallback extractors keep <pre> as quote/code
            inner = "\n\n".join(block.text for block in self.blocks(element))
            if not inner:
                return []
            return [Block("quote", "\n".join(f"> {line}" if line else ">" for line in inner.split("\n")))]
        if tag == "table":
            text = self.table(element)
            return [Block("table", text)] if text else []
        if tag in ("div", "ab", "note"):
            return self.blocks(element)
        text = self.tidy(self.inline_content(element))
        return [Block("paragraph", text)] if text else []

    def list_text(self, element: _Element) -> str:
        ordered = (element.get("rend") or "").lower() == "ol"
        lines: list[str] = []
        number = 1
        for item in element:
            if not isinstance(item.tag, str):
                continue
            if item.tag == "list":  # a list nested directly in a list
                nested = self.list_text(item)
                lines.extend(f"  {line}" if line else line for line in nested.split("\n") if nested)
                continue
            body = self.item_text(item) if item.tag == "item" else self.tidy(self.inline(item, with_tail=False))
            if not body:
                continue
            marker = f"{number}. " if ordered else "- "
            number += 1
            first, *rest = body.split("\n")
            lines.append(marker + first)
            lines.extend(" " * len(marker) + line if line else line for line in rest)
        return "\n".join(lines)

    def item_text(self, item: _Element) -> str:
        """An item's text; its paragraphs, code and nested lists follow on their own (indented) lines."""
        parts: list[str] = []
        inline: list[str] = [item.text or ""]

        def flush() -> None:
            text = self.tidy("".join(inline))
            inline.clear()
            if text:
                parts.append(text)

        for child in item:
            if not isinstance(child.tag, str):
                inline.append(child.tail or "")
                continue
            if child.tag == "list":
                flush()
                nested = self.list_text(child)
                if nested:
                    parts.append(nested)
            elif child.tag in ("p", "quote", "head", "table") or (child.tag == "code" and self._is_code_block(child)):
                flush()
                parts.extend(block.text for block in self.block(child))
            else:
                inline.append(self.inline(child, with_tail=False))
            inline.append(child.tail or "")
        flush()
        return "\n".join(parts)

    def table(self, element: _Element) -> str:
        rows = []
        for row in element.iter("row"):
            cells = [
                self.tidy(self.inline_content(cell)).replace("\n", " ").replace("|", "\\|") for cell in row.iter("cell")
            ]
            if any(cells):
                rows.append(cells)
        if not rows:
            return ""
        width = max(len(row) for row in rows)
        lines = [f"| {' | '.join(row + [''] * (width - len(row)))} |" for row in rows]
        lines.insert(1, f"|{' --- |' * width}")
        return "\n".join(lines)

    def code_block(self, element: _Element) -> str:
        text = _code_text(element).lstrip("\n").rstrip()
        if not text.strip():
            return ""
        source = self.code.get(code_key(text))
        if source is not None:
            return fence(source.text, source.language)
        return fence(text)

    # --- inline --------------------------------------------------------------------------------------------
    def inline_content(self, element: _Element) -> str:
        """The element's own text and its children, inline (no tail)."""
        parts = [element.text or ""]
        for child in element:
            if isinstance(child.tag, str):
                parts.append(self.inline(child, with_tail=False))
            parts.append(child.tail or "")
        return "".join(parts)

    def inline(self, element: _Element, with_tail: bool = True) -> str:
        tag = element.tag
        tail = element.tail or "" if with_tail else ""
        if tag == "lb":
            return BREAK + tail
        if tag == "graphic":
            return tail
        if tag == "code" or (tag == "hi" and element.get("rend") == "#t"):
            if self._is_code_block(element):
                return self._keep(self.code_block(element)) + tail
            code = _code_text(element)
            return (f"`{code.strip()}`" if code.strip() else code) + tail
        if tag in ("list", "quote", "head", "p", "table"):
            # A block nested in inline content (repaired markup): keep its text on its own lines.
            text = "\n\n".join(block.text for block in self.block(element))
            return (self._keep(text) if text else "") + tail
        text = self.inline_content(element)
        if tag == "ref":
            # Repaired markup can put whole blocks in a link (<a>...<pre>): the link keeps its words only.
            label, found, blocks = text.partition(BREAK * 2 + "\x01")
            if found:
                return f"{self.link(element, label)}{found}{blocks}{tail}"
            return self.link(element, text) + tail
        return text + tail

    def link(self, element: _Element, text: str) -> str:
        label = self.tidy(text).replace("\n", " ")
        href = (element.get("target") or "").strip()
        if not label:
            return ""
        if not href or href.lower().startswith(_SKIPPED_LINKS):
            return text
        url = urljoin(self.base_url, href) if self.base_url else href
        return f"[{label}]({url})"

    @staticmethod
    def _is_code_block(element: _Element) -> bool:
        parent = element.getparent()
        if parent is None or parent.tag in ("body", "doc", "main", "quote", "div"):
            return True
        return "\n" in _code_text(element)


def _code_text(element: _Element) -> str:
    pieces = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str):
            pieces.append("\n" if child.tag == "lb" else _code_text(child))
        pieces.append(child.tail or "")
    return "".join(pieces)


def _heading_level(rend: str | None) -> int:
    match = re.fullmatch(r"h([1-6])", (rend or "").strip().lower())
    return int(match.group(1)) if match else 2


# --- small HTML fragments (a LinkedIn post's text) --------------------------------------------------------------
_FRAGMENT_BLOCKS = frozenset(
    {"p", "div", "li", "ul", "ol", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "section"}
)
_FRAGMENT_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "img", "button", "video", "audio"})


def fragment_text(node: Tag, base_url: str | None = None) -> str:
    """Text of a short inline fragment (a post's text): `<br>` line breaks, block ends as line breaks, links as
    `[text](url)`. Everything else is flattened; whitespace inside lines collapses as a browser shows it."""
    pieces: list[str] = []

    def walk(tag: Tag) -> None:
        for child in tag.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):
                    pieces.append(str(child).replace("\n", " "))
                continue
            if not isinstance(child, Tag) or child.name in _FRAGMENT_SKIP or _hidden(child):
                continue
            if child.name == "br":
                pieces.append("\n")
            elif child.name == "a":
                label = tidy(child.get_text(" ")).replace("\n", " ")
                href = str(child.get("href") or "").strip()
                if label and href and not href.lower().startswith(_SKIPPED_LINKS):
                    url = urljoin(base_url, href) if base_url else href
                    # Hashtags and mentions are links on LinkedIn: keep them as the words a reader sees.
                    pieces.append(
                        label if label.startswith(("#", "@")) or "/feed/hashtag" in url else f"[{label}]({url})"
                    )
                else:
                    pieces.append(label)
            elif child.name in _FRAGMENT_BLOCKS:
                pieces.append("\n")
                walk(child)
                pieces.append("\n")
            else:
                walk(child)

    walk(node)
    lines = [_WS.sub(" ", line).strip() for line in "".join(pieces).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _hidden(tag: Tag) -> bool:
    if tag.has_attr("hidden"):
        return True
    classes = tag.get("class") or []
    if any(cls in ("visually-hidden", "sr-only", "screen-reader-text") for cls in classes):
        return True
    style = str(tag.get("style") or "").replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style
