"""Medium articles: rendered by headless Chromium (Medium builds much of the page with JavaScript), then read
by the one article extraction path with Medium's hints (several years of layouts)."""

from __future__ import annotations

from llm_engineering.application.crawlers.browser_crawler import BrowserCrawler
from llm_engineering.application.crawlers.extraction import PageHints, extract_article
from llm_engineering.application.crawlers.walls import detect_bot_wall
from llm_engineering.domain.documents import ArticleDocument, UserDocument
from llm_engineering.domain.errors import BotWallError, CrawlError
from llm_engineering.domain.types import Platform

MEDIUM_HINTS = PageHints(
    # The whole story, never its first `section` only: a story has one section per separator.
    content=(".postArticle-content", "article", "[role=main]", "main"),
    title=("[data-testid=storyTitle]", "h1.graf--title", "article h1"),
    subtitle=(".pw-subtitle-paragraph", "[data-testid=storySubtitle]", "h4.graf--subtitle", "article h2.subtitle"),
    chrome=(
        # 2020s: author bar, claps, "Listen" and "Share" sit in .speechify-ignore blocks.
        ".speechify-ignore",
        "[data-testid=authorName]",
        "[data-testid=headerClapButton]",
        "[aria-label=responses]",
        # 2015-2019 ("graf" layout): metabar, author lockup, follow buttons, share bar, sticky footer.
        ".metabar",
        ".postMetaHeader",
        ".postMetaLockup",
        ".js-postShareWidget",
        ".postActions",
        ".js-stickyFooter",
        ".supplementalPostContent",
        ".followState",
        ".u-fixed",
        "footer",
        "aside",
    ),
    site_names=("Medium",),
)
# Body text that proves the story has rendered (the title alone does not).
BODY_SELECTOR = "article p, article pre, article li, article blockquote, .postArticle-content p"
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
        content = extract_article(soup, link, url, MEDIUM_HINTS)
        return self.document(ArticleDocument, link, author, content)
