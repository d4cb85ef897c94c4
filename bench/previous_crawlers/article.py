"""Articles fetched over plain HTTP: any blog (the dispatcher's default) and Substack.

`extract_article` is the one extraction path for article pages; the Medium crawler reuses it on the
browser-rendered page.
"""

from __future__ import annotations

from dataclasses import dataclass

from bs4 import BeautifulSoup, Tag

from llm_engineering.application.crawlers.base import Crawler
from llm_engineering.application.ports import PageFetcher
from llm_engineering.domain.documents import ArticleDocument, UserDocument
from llm_engineering.domain.errors import BotWallError, CrawlError
from llm_engineering.domain.types import Platform
from previous_crawlers.html_text import (
    html_to_text,
    page_language,
    page_subtitle,
    page_title,
    parse_html,
    text_of,
)
from previous_crawlers.walls import detect_bot_wall

# A candidate container with less text than this is probably a teaser box, not the article.
MIN_CONTAINER_CHARS = 80


@dataclass(frozen=True)
class ArticleLayout:
    """Where a site keeps its article parts (CSS selectors, tried in order) and what is noise."""

    content: tuple[str, ...] = (
        "[itemprop=articleBody]",
        "article .post-content",
        "article .entry-content",
        "article",
        ".post-content",
        ".entry-content",
        ".article-content",
        ".article-body",
        ".post-body",
        "main",
        "[role=main]",
        "#content",
        ".content",
    )
    title: tuple[str, ...] = ()
    subtitle: tuple[str, ...] = ()
    noise: tuple[str, ...] = (
        "nav",
        "aside",
        "footer",
        "form",
        "[role=navigation]",
        "[role=complementary]",
        ".comments",
        "#comments",
        ".share",
        ".sharing",
        ".social-share",
        ".newsletter",
        ".related-posts",
        ".sidebar",
        ".cookie-banner",
    )


GENERIC_LAYOUT = ArticleLayout()
SUBSTACK_LAYOUT = ArticleLayout(
    content=(".available-content .body.markup", ".available-content", ".body.markup", *GENERIC_LAYOUT.content),
    title=("h1.post-title", "h1[data-testid=post-title]"),
    subtitle=("h3.subtitle", ".subtitle"),
    noise=(
        *GENERIC_LAYOUT.noise,
        ".subscription-widget-wrap",
        ".subscription-widget",
        ".subscribe-widget",
        ".button-wrapper",
        ".paywall",
        ".post-footer",
        ".footnote-anchor",
    ),
)


def extract_article(soup: BeautifulSoup, link: str, base_url: str, layout: ArticleLayout) -> dict[str, str]:
    """{"Title", "Subtitle", "Content"} (+ "language") from a parsed article page. Raises `CrawlError`
    ("no article text found") when the page has no readable body."""
    title = page_title(soup, *layout.title)
    subtitle = page_subtitle(soup, *layout.subtitle)
    root = _content_root(soup, layout)
    if root is None:
        raise CrawlError(link, "no article text found (the page has no body)")
    for selector in layout.noise:
        for tag in root.select(selector):
            if tag is not root:
                tag.decompose()
    # The title and subtitle have their own keys: keep them out of the body text.
    for selector in (*layout.title, *layout.subtitle, "h1"):
        tag = root.select_one(selector)
        if tag is not None and text_of(tag) in (title, subtitle):
            tag.decompose()
    content = html_to_text(root, base_url=base_url)
    if not content:
        raise CrawlError(link, "no article text found")
    result = {"Title": title or "", "Subtitle": subtitle or "", "Content": content}
    language = page_language(soup)
    if language:
        result["language"] = language
    return result


def _content_root(soup: BeautifulSoup, layout: ArticleLayout) -> Tag | None:
    for selector in layout.content:
        for candidate in soup.select(selector):
            if len(candidate.get_text(" ", strip=True)) >= MIN_CONTAINER_CHARS:
                return candidate
    return soup.body or (soup if soup.find(True) else None)


class ArticleCrawler(Crawler):
    """Any article page: one HTTP GET, no JavaScript. The dispatcher's default for unknown domains."""

    platform = Platform.BLOG
    layout: ArticleLayout = GENERIC_LAYOUT

    def __init__(self, fetcher: PageFetcher) -> None:
        self.fetcher = fetcher

    def crawl(self, link: str, author: UserDocument) -> ArticleDocument:
        response = self.fetcher.get(link, raise_for_status=False)
        content_type = response.header("Content-Type").split(";")[0].strip().lower()
        if response.ok and content_type and not any(kind in content_type for kind in ("html", "xml", "text/")):
            raise CrawlError(link, f"not a web page ({content_type}); only HTML articles can be crawled")
        soup = parse_html(response.content, response.charset)
        # Challenge pages often come with 403/503: name the wall rather than the bare status.
        wall = detect_bot_wall(soup)
        if wall:
            raise BotWallError(link, f"{wall}; open the link in a browser or try later")
        response.raise_for_status(link)
        content = extract_article(soup, link, response.url, self.layout)
        return self.document(ArticleDocument, link, author, content)


class SubstackCrawler(ArticleCrawler):
    """Substack posts are server-rendered: the generic crawler with Substack's layout."""

    platform = Platform.SUBSTACK
    layout = SUBSTACK_LAYOUT
