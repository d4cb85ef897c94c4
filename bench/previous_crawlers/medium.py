"""Medium articles: rendered by headless Chromium (Medium builds much of the page with JavaScript)."""

from __future__ import annotations

from llm_engineering.domain.documents import ArticleDocument, UserDocument
from llm_engineering.domain.errors import BotWallError, CrawlError
from llm_engineering.domain.types import Platform
from previous_crawlers.article import ArticleLayout, extract_article
from previous_crawlers.browser_crawler import BrowserCrawler
from previous_crawlers.walls import detect_bot_wall

MEDIUM_LAYOUT = ArticleLayout(
    content=("article section", "article", "main", "[role=main]"),
    title=("[data-testid=storyTitle]", "article h1"),
    subtitle=(".pw-subtitle-paragraph", "[data-testid=storySubtitle]", "article h2.subtitle"),
    # Medium wraps the author bar, claps, "Listen" and "Share" in .speechify-ignore blocks.
    noise=(".speechify-ignore", "[data-testid=authorName]", "[data-testid=headerClapButton]", "nav", "footer", "aside"),
)
# Body text that proves the article has rendered (the title alone does not).
BODY_SELECTOR = "article p, article pre, article li, article blockquote"
MIN_BODY_CHARS = 200


class MediumCrawler(BrowserCrawler):
    platform = Platform.MEDIUM

    def crawl(self, link: str, author: UserDocument) -> ArticleDocument:
        status = self.load(link)
        with self.browser_errors(link):
            if (status is None or status < 400) and self.wait_for_text(BODY_SELECTOR, MIN_BODY_CHARS):
                self.scroll()
            soup = self.page_soup()
            url = self.current_url
        wall = detect_bot_wall(soup)
        if wall:
            raise BotWallError(link, f"{wall}; Medium refused the headless browser, try later or another network")
        if status is not None and status >= 400:
            raise CrawlError(link, f"HTTP {status}")
        content = extract_article(soup, link, url, MEDIUM_LAYOUT)
        return self.document(ArticleDocument, link, author, content)
