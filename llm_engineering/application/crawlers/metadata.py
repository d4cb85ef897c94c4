"""Page metadata: title, subtitle, language.

Title order: the platform's own title element (a layout hint), then the headline a reader sees (the article's
single `<h1>`, else the page's single `<h1>`, never a theme header's site name), then og:title, the JSON-LD
headline, twitter:title and `<title>`. On the held-out WCXB check (bench/README.md) the visible headline
matched the annotated title more often than og:title, which is often an SEO variant. Whatever wins loses a
site decoration (" – Medium", " | by Ada | Medium", "Blog name: ", "» ") when the decoration is the site's
name, a known platform or a byline; and when the page's `<h1>` is the winner minus such a decoration, the
`<h1>` is taken. Titles that merely contain a dash ("Death Spiral - How Small Languages Die") stay whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from bs4 import BeautifulSoup, Tag

# Separators sites put between a title and their own name.
_SEPARATORS = (" | ", " – ", " — ", " - ", " · ", " • ", " :: ", " » ", ": ")
PLATFORM_NAMES = ("medium", "substack", "linkedin", "linkedin pulse", "wordpress", "blogger", "blogspot")
_LEADING_NOISE = re.compile(r"^[\s»«|•·:–—-]+")
_ARTICLE_TYPES = ("article", "newsarticle", "blogposting", "techarticle", "report", "scholarlyarticle", "posting")


def text_of(tag: Tag | None) -> str | None:
    if tag is None:
        return None
    text = " ".join(tag.get_text(" ").split())
    return text or None


def meta_content(soup: BeautifulSoup, *names: str) -> str | None:
    """The first non-empty <meta property|name|itemprop=...> content among `names`."""
    for name in names:
        for attr in ("property", "name", "itemprop"):
            tag = soup.find("meta", attrs={attr: name})
            if tag is not None and str(tag.get("content") or "").strip():
                return " ".join(str(tag["content"]).split())
    return None


def json_ld(soup: BeautifulSoup) -> Iterator[dict[str, Any]]:
    """Every JSON-LD object of the page (lists and @graph flattened); broken JSON is skipped."""
    for script in soup.find_all("script", attrs={"type": re.compile(r"ld\+json", re.I)}):
        try:
            data = json.loads(script.string or script.get_text() or "")
        except (ValueError, TypeError):
            continue
        stack = [data]
        while stack:
            item = stack.pop(0)
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                yield item
                if isinstance(item.get("@graph"), list):
                    stack.extend(item["@graph"])


def _types(item: dict[str, Any]) -> list[str]:
    value = item.get("@type")
    values = value if isinstance(value, list) else [value]
    return [str(v).lower() for v in values if v]


def json_ld_headline(soup: BeautifulSoup) -> str | None:
    for item in json_ld(soup):
        if any(t.endswith(_ARTICLE_TYPES) for t in _types(item)):
            for key in ("headline", "name"):
                value = item.get(key)
                if isinstance(value, str) and value.strip():
                    return " ".join(value.split())
    return None


def site_names(soup: BeautifulSoup, url: str | None, extra: tuple[str, ...] = ()) -> set[str]:
    """Names the site may decorate titles with: og:site_name, application-name, the JSON-LD publisher, the
    host, the known platforms and any the caller knows (a layout hint, trafilatura's site name)."""
    names = {n for n in extra if n}
    names.update(n for n in (meta_content(soup, "og:site_name", "application-name", "twitter:site"),) if n)
    for item in json_ld(soup):
        publisher = item.get("publisher")
        for pub in publisher if isinstance(publisher, list) else [publisher]:
            if isinstance(pub, dict) and isinstance(pub.get("name"), str):
                names.add(pub["name"])
    host = (urlsplit(url).hostname or "") if url else ""
    if host:
        bare = host.removeprefix("www.")
        labels = bare.split(".")
        names.update({host, bare, labels[-2] if len(labels) >= 2 else labels[0]})
    names.update(PLATFORM_NAMES)
    return {_norm(n).lstrip("@") for n in names if _norm(n)}


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", (text or "").casefold()))


def strip_site_decoration(title: str, names: set[str]) -> str:
    """Remove site names / bylines around a title, as long as something is left."""
    title = _LEADING_NOISE.sub("", title).strip()
    changed = True
    while changed:
        changed = False
        for sep in _SEPARATORS:
            head, found, tail = title.rpartition(sep)
            if found and head.strip() and (_norm(tail) in names or _norm(tail).startswith("by ")):
                title, changed = head.strip(), True
                break
            head, found, tail = title.partition(sep)
            if found and tail.strip() and _norm(head) in names:
                title, changed = tail.strip(), True
                break
    return title


def page_title(
    soup: BeautifulSoup, url: str | None = None, selectors: tuple[str, ...] = (), extra_names: tuple[str, ...] = ()
) -> str | None:
    """The article's title (see the module doc); None when the page has none."""
    names = site_names(soup, url, extra_names)
    h1s = [text for tag in soup.find_all("h1") if (text := text_of(tag)) and not _is_site_heading(tag)]
    article_h1s = {
        text
        for tag in soup.select("article h1, main h1, [role=main] h1")
        if (text := text_of(tag)) and not _is_site_heading(tag)
    }
    # The headline a reader sees: the article's one <h1>, else the page's one <h1>, unless it is the site's name.
    visible = next(iter(article_h1s)) if len(article_h1s) == 1 else (h1s[0] if len(set(h1s)) == 1 else None)
    if visible is not None and _norm(visible) in names:
        visible = None
    candidates = [text_of(soup.select_one(selector)) for selector in selectors]
    candidates.append(visible)
    candidates += [
        meta_content(soup, "og:title"),
        json_ld_headline(soup),
        meta_content(soup, "twitter:title"),
        text_of(soup.find("title")),
    ]
    chosen = next((c for c in candidates if c), None)
    if chosen is None:
        return None
    title = strip_site_decoration(chosen, names) or chosen
    # The page's own heading is the title without decorations the names above did not catch.
    for heading in filter(None, (*article_h1s, *h1s)):
        if heading != title and _norm(heading) and _is_decorated(title, heading):
            return heading
    return title


_SITE_HEADING_CLASS = re.compile(r"site-?(title|name)|blog-?(title|name)|logo|brand", re.IGNORECASE)


def _is_site_heading(tag: Tag) -> bool:
    """An <h1> that is the site's name (a theme's header), not the article's: it links to a site's home page
    ("/" or a bare host) or carries a site-title / logo class."""
    classes = " ".join([*(tag.get("class") or []), str(tag.get("id") or "")])
    if _SITE_HEADING_CLASS.search(classes):
        return True
    link = tag.find("a", href=True)
    if link is None or text_of(link) != text_of(tag):
        return False
    return urlsplit(str(link["href"])).path in ("", "/")


def _is_decorated(title: str, heading: str) -> bool:
    return any(title.startswith(heading + sep) or title.endswith(sep + heading) for sep in _SEPARATORS)


def page_subtitle(soup: BeautifulSoup, selectors: tuple[str, ...] = ()) -> str | None:
    for selector in selectors:
        text = text_of(soup.select_one(selector))
        if text:
            return text
    return meta_content(soup, "og:description", "twitter:description", "description")


def page_language(soup: BeautifulSoup) -> str | None:
    html = soup.find("html")
    lang = str(html.get("lang") or html.get("xml:lang") or "").strip() if isinstance(html, Tag) else ""
    return lang or meta_content(soup, "og:locale", "content-language", "language") or None
