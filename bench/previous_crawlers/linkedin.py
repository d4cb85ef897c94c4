"""LinkedIn posts: headless Chromium, logged in with LINKEDIN_USERNAME / LINKEDIN_PASSWORD when given.

Public posts often render without a login; anything behind the auth wall is an `AuthRequiredError` that
says which setting to fill in. A failed login is remembered for the batch: retrying it per link would only
get the account locked.
"""

from __future__ import annotations

import time
from urllib.parse import urljoin

from bs4 import BeautifulSoup

from llm_engineering.application.crawlers.base import CrawlerConfig
from llm_engineering.application.ports import Browser, DomainThrottle
from llm_engineering.domain.documents import PostDocument, UserDocument
from llm_engineering.domain.errors import AuthRequiredError, BotWallError, BrowserError, CrawlError
from llm_engineering.domain.types import Platform
from previous_crawlers.browser_crawler import POLL_S, BrowserCrawler
from previous_crawlers.html_text import html_to_text, meta_content, text_of
from previous_crawlers.walls import (
    AUTH_WALL_TEXTS,
    AUTH_WALL_URL_PARTS,
    detect_auth_wall,
    detect_bot_wall,
)

LINKEDIN_LOGIN_URL = "https://www.linkedin.com/login"
# Post text containers: public post page, logged-in feed update, older layouts.
POST_TEXT_SELECTORS = (
    "[data-test-id=main-feed-activity-card__commentary]",
    ".feed-shared-update-v2__description",
    ".update-components-text",
    ".feed-shared-inline-show-more-text",
    ".feed-shared-text",
    ".attributed-text-segment-list__content",
)
POST_IMAGE_SELECTORS = (
    "[data-test-id=feed-images-content] img",
    ".update-components-image img",
    ".feed-shared-image img",
    ".feed-images-content img",
)
_LOGIN_PAGE_PARTS = ("/login", "/uas/login", "/checkpoint", "/challenge")


class LinkedInCrawler(BrowserCrawler):
    platform = Platform.LINKEDIN
    give_up_words = AUTH_WALL_TEXTS
    give_up_url_parts = AUTH_WALL_URL_PARTS

    def __init__(
        self,
        browser: Browser,
        throttle: DomainThrottle,
        config: CrawlerConfig | None = None,
        login_url: str = LINKEDIN_LOGIN_URL,
    ) -> None:
        super().__init__(browser, throttle, config)
        self.login_url = login_url
        self._logged_in = False
        self._login_error: str | None = None

    @property
    def has_credentials(self) -> bool:
        password = self.config.linkedin_password
        return bool(self.config.linkedin_username and password and password.get_secret_value())

    def crawl(self, link: str, author: UserDocument) -> PostDocument:
        if self.has_credentials and not self._logged_in:
            self._login(link)
        status = self.load(link)
        with self.browser_errors(link):
            if status is None or status < 400:
                self.wait_for_text(", ".join(POST_TEXT_SELECTORS), 1)
            soup = self.page_soup()
            url = self.current_url
        return self._document(link, url, status, soup, author)

    def _document(
        self, link: str, url: str, status: int | None, soup: BeautifulSoup, author: UserDocument
    ) -> PostDocument:
        wall = detect_bot_wall(soup)
        if wall:
            raise BotWallError(link, f"{wall}; LinkedIn refused the headless browser, try later")
        text_node = next((node for s in POST_TEXT_SELECTORS if (node := soup.select_one(s)) is not None), None)
        text = html_to_text(text_node, base_url=url) if text_node is not None else ""
        if not text:
            auth = detect_auth_wall(soup, url)
            if auth:
                raise AuthRequiredError(link, self._auth_hint(auth))
            if status is not None and status >= 400:
                raise CrawlError(link, f"HTTP {status}")
            raise CrawlError(link, "no post text found")
        content = {"Content": text}
        title = meta_content(soup, "og:title", "twitter:title") or text_of(soup.find("title"))
        if title:
            content["Title"] = title
        return self.document(PostDocument, link, author, content, image=_image_url(soup, url))

    def _auth_hint(self, wall: str) -> str:
        if self._login_error:
            return f"LinkedIn shows a login wall ({wall}); the login failed: {self._login_error}"
        if not self.has_credentials:
            return f"LinkedIn shows a login wall ({wall}); set LINKEDIN_USERNAME and LINKEDIN_PASSWORD to log in"
        return f"LinkedIn shows a login wall ({wall}) even after logging in as {self.config.linkedin_username}"

    def _login(self, link: str) -> None:
        if self._login_error:
            raise AuthRequiredError(link, f"LinkedIn login failed earlier in this batch: {self._login_error}")
        self.load(self.login_url)
        browser = self.browser
        try:
            if not browser.exists("#username") or not browser.exists("#password"):
                self._login_error = f"no login form at {self.login_url} (the page layout changed?)"
                raise AuthRequiredError(link, self._login_error)
            browser.type_text("#username", self.config.linkedin_username or "")
            password = self.config.linkedin_password.get_secret_value() if self.config.linkedin_password else ""
            browser.type_text("#password", password)
            browser.click("button[type=submit], input[type=submit]")
        except BrowserError as exc:
            raise CrawlError(link, f"browser error during LinkedIn login: {exc}") from exc

        deadline = time.monotonic() + self.config.timeout_s
        while time.monotonic() < deadline:
            # Logged in = we left the login page: no password field and no login/checkpoint URL.
            try:
                current = browser.current_url().lower()
                form_gone = not browser.exists("#password")
            except BrowserError:
                current, form_gone = "", False
            if form_gone and current and not any(part in current for part in _LOGIN_PAGE_PARTS):
                self._logged_in = True
                return
            time.sleep(POLL_S)
        current = browser.current_url()
        if any(part in current.lower() for part in ("/checkpoint", "/challenge")):
            self._login_error = (
                f"LinkedIn asks for a verification step ({current}); complete it once in a normal browser"
            )
        else:
            self._login_error = (
                f"still on the login page after {self.config.timeout_s:g}s; check LINKEDIN_USERNAME / LINKEDIN_PASSWORD"
            )
        raise AuthRequiredError(link, self._login_error)


def _image_url(soup: BeautifulSoup, base_url: str) -> str | None:
    for selector in POST_IMAGE_SELECTORS:
        img = soup.select_one(selector)
        if img is None:
            continue
        src = str(img.get("src") or img.get("data-delayed-url") or img.get("data-src") or "").strip()
        if src and not src.startswith("data:"):
            return urljoin(base_url, src)
    return None
