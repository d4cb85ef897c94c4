"""Articles fetched over plain HTTP: any blog (the dispatcher's default) and Substack.

Both go through `extraction.extract_article`, the one extraction path for article pages (the Medium and
LinkedIn Pulse crawlers use it on the browser-rendered page); a platform only adds its `PageHints`.
"""

from __future__ import annotations

from llm_engineering.application.crawlers.base import Crawler
from llm_engineering.application.crawlers.extraction import GENERIC_HINTS, PageHints, extract_article, parse_html
from llm_engineering.application.crawlers.walls import detect_bot_wall
from llm_engineering.application.ports import PageFetcher
from llm_engineering.domain.documents import ArticleDocument, UserDocument
from llm_engineering.domain.errors import BotWallError, CrawlError
from llm_engineering.domain.types import Platform

SUBSTACK_HINTS = PageHints(
    content=(".available-content .body.markup", ".available-content", ".body.markup"),
    title=("h1.post-title", "h1[data-testid=post-title]"),
    subtitle=("h3.subtitle", ".subtitle"),
    chrome=(
        ".subscription-widget-wrap",
        ".subscription-widget",
        ".subscribe-widget",
        ".button-wrapper",
        ".paywall",
        ".paywall-jump",
        ".post-footer",
        ".footnote-anchor",
        ".comments-page",
        ".comments-section",
        ".post-ufi",
    ),
    site_names=("Substack",),
)


class ArticleCrawler(Crawler):
    """Any article page: one HTTP GET, no JavaScript. The dispatcher's default for unknown domains."""

    platform = Platform.BLOG
    hints: PageHints = GENERIC_HINTS

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
        content = extract_article(soup, link, response.url, self.hints)
        return self.document(ArticleDocument, link, author, content)


class SubstackCrawler(ArticleCrawler):
    """Substack posts are server-rendered: the generic crawler with Substack's hints."""

    platform = Platform.SUBSTACK
    hints = SUBSTACK_HINTS
