"""What the Selenium crawlers (Medium, LinkedIn) share: a lazily started browser, polite page loads,
waiting for JavaScript-rendered text, scrolling for lazy content."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from bs4 import BeautifulSoup

from llm_engineering.application.crawlers.base import Crawler, CrawlerConfig
from llm_engineering.application.ports import Browser, DomainThrottle
from llm_engineering.domain.errors import BrowserError, CrawlError, ServiceUnavailableError
from previous_crawlers.html_text import parse_html
from previous_crawlers.walls import BOT_WALL_TEXTS, BOT_WALL_TITLES

POLL_S = 0.2
# How long an anti-bot challenge may take to clear itself (some pass after a JS check) before we give up.
BOT_WALL_GRACE_S = 3.0
# Text below the threshold that has not changed for this long is taken as complete.
SETTLE_S = 2.0
_SCROLL_HEIGHT_JS = "return document.documentElement ? document.documentElement.scrollHeight : 0;"
_TEXT_JS = """
const parts = Array.from(document.querySelectorAll(arguments[0]));
let chars = 0;
for (const el of parts) { chars += (el.innerText || '').trim().length; }
const body = document.body ? (document.body.innerText || '').slice(0, 3000) : '';
return [chars, document.title || '', body, location.href];
"""


class BrowserCrawler(Crawler):
    """Base for crawlers that need a real browser. Several crawlers share one `Browser` and one throttle
    (the composition root builds them); the dispatcher closes the browser after the batch."""

    # Page words / URL parts that mean "stop waiting now: the content will not come" (login walls).
    give_up_words: tuple[str, ...] = ()
    give_up_url_parts: tuple[str, ...] = ()

    def __init__(self, browser: Browser, throttle: DomainThrottle, config: CrawlerConfig | None = None) -> None:
        self.config = config or CrawlerConfig()
        self.browser = browser
        self.throttle = throttle

    @contextmanager
    def browser_errors(self, link: str) -> Iterator[None]:
        """Turn a browser failure mid-crawl (crash, closed window) into a `CrawlError` naming the link."""
        try:
            yield
        except BrowserError as exc:
            raise CrawlError(link, f"browser error: {exc}") from exc

    def load(self, link: str) -> int | None:
        """Open `link`; returns the HTTP status when known. Every failure is a `CrawlError` naming the link."""
        self.throttle.wait(link)
        try:
            return self.browser.open(link, timeout_s=self.config.timeout_s)
        except ServiceUnavailableError as exc:
            raise CrawlError(link, str(exc)) from exc

    def wait_for_text(self, selector: str, min_chars: int, timeout_s: float | None = None) -> bool:
        """Poll until the elements matching `selector` hold `min_chars` of text (JavaScript-rendered pages).

        Also stops when some (short) text has stopped growing, or on a page that looks like a wall and does
        not clear within a short grace period. Returns whether text appeared; the caller decides what a miss
        means (the page is parsed either way).
        """
        timeout = self.config.timeout_s if timeout_s is None else timeout_s
        start = time.monotonic()
        last_chars, changed_at = -1, start
        while True:
            chars, title, body, url = self.browser.run_script(_TEXT_JS, selector)
            if chars >= min_chars:
                return True
            now = time.monotonic()
            if chars != last_chars:
                last_chars, changed_at = chars, now
            elif chars > 0 and now - changed_at >= SETTLE_S:
                return True  # some text that stopped growing: a short article, not a page still rendering
            elapsed = now - start
            if elapsed >= timeout:
                return False
            page, url = f"{title}\n{body}".lower(), str(url).lower()
            if any(word in page for word in self.give_up_words) or any(p in url for p in self.give_up_url_parts):
                return False
            if elapsed >= BOT_WALL_GRACE_S and any(word in page for word in (*BOT_WALL_TITLES, *BOT_WALL_TEXTS)):
                return False
            time.sleep(POLL_S)

    def scroll(self, max_rounds: int | None = None, settle_s: float = 0.4) -> None:
        """Scroll to the bottom until the page stops growing (lazy-loaded content), at most N rounds."""
        rounds = self.config.scroll_limit if max_rounds is None else max_rounds
        height = self.browser.run_script(_SCROLL_HEIGHT_JS)
        for _ in range(max(0, rounds)):
            self.browser.run_script("window.scrollTo(0, document.documentElement.scrollHeight);")
            deadline = time.monotonic() + settle_s
            new_height = height
            while time.monotonic() < deadline:
                time.sleep(0.1)
                new_height = self.browser.run_script(_SCROLL_HEIGHT_JS)
                if new_height != height:
                    break
            if new_height == height:
                return
            height = new_height

    def page_soup(self) -> BeautifulSoup:
        return parse_html(self.browser.page_source())

    @property
    def current_url(self) -> str:
        return self.browser.current_url()
