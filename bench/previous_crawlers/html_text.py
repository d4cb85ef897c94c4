"""HTML -> plain text that keeps the structure a reader (and a chunker) needs.

Headings become `#` lines, paragraphs are separated by blank lines, list items become `- ` / `1. ` lines
(nested lists indented), code blocks are fenced with their text byte-for-byte, links become `[text](url)`
with absolute URLs, quotes get `> `. Inline formatting (bold, italics) is dropped on purpose: it is noise for
retrieval and fine-tuning. Also: page metadata helpers (title, subtitle, language) shared by all crawlers.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString

BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "center", "dd", "details", "dialog", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
# Never content: scripts, styles, widgets and media without text.
DROP_TAGS = frozenset(
    {
        "script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "embed", "video",
        "audio", "source", "picture", "img", "button", "input", "select", "textarea", "link", "meta", "head",
    }
)  # fmt: skip
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_WHITESPACE = re.compile(r"\s+")  # source newlines are just spaces; only <br> breaks a line
_SPACES = re.compile(r"[^\S\n]+")
_SPACE_AROUND_NEWLINE = re.compile(r" *\n *")
_LANGUAGE_CLASS = re.compile(r"^(?:language|lang)-([\w+#.-]+)$")
_BACKTICKS = re.compile(r"`{3,}")


def parse_html(html: str | bytes, charset: str | None = None) -> BeautifulSoup:
    """Parse leniently (lxml repairs unclosed and stray tags); never raises on malformed markup."""
    if isinstance(html, bytes):
        return BeautifulSoup(html, "lxml", from_encoding=charset)
    return BeautifulSoup(html, "lxml")


def html_to_text(node: Tag, base_url: str | None = None) -> str:
    """Structured text of `node` (see module doc). Returns '' when there is no visible text."""
    try:
        blocks = _Renderer(base_url).blocks(node)
    except RecursionError:
        # Pathologically deep markup: fall back to flat text rather than failing the link.
        return "\n\n".join(line.strip() for line in node.get_text("\n").splitlines() if line.strip())
    return "\n\n".join(block for block in blocks if block.strip()).strip()


def _is_hidden(tag: Tag) -> bool:
    if tag.has_attr("hidden") or tag.get("aria-hidden") == "true":
        return True
    style = str(tag.get("style") or "").replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style


class _Renderer:
    def __init__(self, base_url: str | None) -> None:
        self.base_url = base_url

    # --- blocks --------------------------------------------------------------------------------------------
    def blocks(self, node: Tag) -> list[str]:
        """Render a node's children into a list of blocks (paragraph-level strings)."""
        blocks: list[str] = []
        inline: list[str] = []

        def flush() -> None:
            text = _tidy_inline("".join(inline))
            inline.clear()
            if text:
                blocks.append(text)

        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # comments, doctype, CDATA
                    inline.append(_WHITESPACE.sub(" ", str(child)))
                continue
            if not isinstance(child, Tag) or child.name in DROP_TAGS or _is_hidden(child):
                continue
            if child.name in BLOCK_TAGS:
                flush()
                blocks.extend(self.block(child))
            elif child.find(BLOCK_TAGS) is not None:
                # Repaired markup often nests blocks in an unclosed inline tag (<a>...<pre>): keep the blocks.
                flush()
                blocks.extend(self.blocks(child))
            else:
                inline.append(self.inline(child))
        flush()
        return blocks

    def block(self, tag: Tag) -> list[str]:
        name = tag.name
        if name in HEADINGS:
            text = _tidy_inline(self.inline(tag)).replace("\n", " ")
            return [f"{'#' * HEADINGS[name]} {text}"] if text else []
        if name == "pre":
            return [self.code_block(tag)] if tag.get_text().strip() else []
        if name in ("ul", "ol"):
            text = self.list_block(tag)
            return [text] if text else []
        if name == "blockquote":
            inner = "\n\n".join(self.blocks(tag))
            return ["\n".join(f"> {line}" if line else ">" for line in inner.splitlines())] if inner else []
        if name == "table":
            return self.table(tag)
        if name == "hr":
            return []
        return self.blocks(tag)

    def list_block(self, tag: Tag) -> str:
        """`- item` / `1. item` lines; an item's further lines (nested lists, paragraphs) are indented under it."""
        ordered = tag.name == "ol"
        try:
            number = int(tag.get("start", 1))
        except (TypeError, ValueError):
            number = 1
        lines: list[str] = []
        for child in tag.children:
            if not isinstance(child, Tag) or child.name in DROP_TAGS or _is_hidden(child):
                continue
            if child.name in ("ul", "ol"):  # a list nested directly in a list (invalid but common)
                nested = self.list_block(child)
                lines.extend("  " + line if line else line for line in nested.split("\n") if nested)
                continue
            if child.name == "li":
                body = "\n".join(self.blocks(child))
            elif child.name in BLOCK_TAGS:
                body = "\n".join(self.block(child))
            else:
                body = _tidy_inline(self.inline(child))
            if not body.strip():
                continue
            marker = f"{number}. " if ordered else "- "
            number += 1
            first, *rest = body.split("\n")
            lines.append(marker + first)
            lines.extend(" " * len(marker) + line if line else line for line in rest)
        return "\n".join(lines)

    def table(self, tag: Tag) -> list[str]:
        rows = []
        for row in tag.find_all("tr"):
            cells = [_tidy_inline(self.inline(cell)).replace("\n", " ") for cell in row.find_all(["td", "th"])]
            if any(cells):
                rows.append(" | ".join(cells))
        return ["\n".join(rows)] if rows else []

    def code_block(self, pre: Tag) -> str:
        # Exact text: no whitespace collapsing, <br> inside highlighted code means a newline.
        pieces: list[str] = []
        for element in pre.descendants:
            if isinstance(element, NavigableString) and not isinstance(element, PreformattedString):
                pieces.append(str(element))
            elif isinstance(element, Tag) and element.name == "br":
                pieces.append("\n")
        code = "".join(pieces).lstrip("\n").rstrip()
        language = _code_language(pre)
        longest = max((len(m) for m in _BACKTICKS.findall(code)), default=2)
        fence = "`" * max(3, longest + 1)
        return f"{fence}{language}\n{code}\n{fence}"

    # --- inline --------------------------------------------------------------------------------------------
    def inline(self, tag: Tag) -> str:
        if tag.name in DROP_TAGS or _is_hidden(tag):
            return ""
        if tag.name == "br":
            return "\n"
        if tag.name == "code":
            text = tag.get_text()
            return f"`{text}`" if text.strip() else text
        text = ""
        for child in tag.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):
                    text += _WHITESPACE.sub(" ", str(child))
            elif isinstance(child, Tag):
                # Block tags inside inline ones (e.g. <a><div>..</div></a>) read as inline with a space.
                piece = self.inline(child)
                text += f" {piece} " if child.name in BLOCK_TAGS else piece
        if tag.name == "a":
            return self.link(tag, text)
        return text

    def link(self, tag: Tag, text: str) -> str:
        href = str(tag.get("href") or "").strip()
        label = _tidy_inline(text).replace("\n", " ")
        if not label:
            return ""
        if not href or href.startswith(("#", "javascript:", "mailto:", "tel:", "data:")):
            return text
        url = urljoin(self.base_url, href) if self.base_url else href
        return f"[{label}]({url})"


def _tidy_inline(text: str) -> str:
    text = _SPACES.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    # <br><br> is how many sites (LinkedIn, Substack notes) separate paragraphs: keep one blank line.
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _code_language(pre: Tag) -> str:
    candidates = [pre, *pre.find_all(True, limit=3)]  # highlighters put the class on an inner code/span
    for tag in candidates:
        for cls in tag.get("class") or []:
            match = _LANGUAGE_CLASS.match(cls)
            if match:
                return match.group(1)
        lang = tag.get("data-language") or tag.get("data-lang")
        if lang:
            return str(lang).strip()
    return ""


# --- page metadata -----------------------------------------------------------------------------------------
def meta_content(soup: BeautifulSoup, *names: str) -> str | None:
    """The first non-empty <meta property|name=...> content among `names`."""
    for name in names:
        for attr in ("property", "name"):
            tag = soup.find("meta", attrs={attr: name})
            if tag is not None and str(tag.get("content") or "").strip():
                return _tidy_inline(str(tag["content"])).replace("\n", " ")
    return None


def text_of(tag: Tag | None) -> str | None:
    if tag is None:
        return None
    text = _tidy_inline(tag.get_text(" ")).replace("\n", " ")
    return text or None


def page_title(soup: BeautifulSoup, *selectors: str) -> str | None:
    """Title from the given CSS selectors, then og:title / twitter:title, the article's <h1>, <title>, any <h1>."""
    for selector in selectors:
        text = text_of(soup.select_one(selector))
        if text:
            return text
    # An article's own <h1> beats <title>, which usually carries the site name too ("Post | Blog").
    return (
        meta_content(soup, "og:title", "twitter:title")
        or text_of(soup.select_one("article h1"))
        or text_of(soup.find("title"))
        or text_of(soup.find("h1"))
    )


def page_subtitle(soup: BeautifulSoup, *selectors: str) -> str | None:
    for selector in selectors:
        text = text_of(soup.select_one(selector))
        if text:
            return text
    return meta_content(soup, "og:description", "twitter:description", "description")


def page_language(soup: BeautifulSoup) -> str | None:
    html = soup.find("html")
    lang = str(html.get("lang") or html.get("xml:lang") or "").strip() if isinstance(html, Tag) else ""
    return lang or None
