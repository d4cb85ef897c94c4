"""LinkedIn: feed posts (PostDocument) and Pulse articles (`linkedin.com/pulse/...`, ArticleDocument).

Both render in headless Chromium, logged in with LINKEDIN_USERNAME / LINKEDIN_PASSWORD when given. Public
posts and articles often render without a login; anything behind the auth wall is an `AuthRequiredError`
that says which setting to fill in. A failed login is remembered for the batch: retrying it per link would
only get the account locked.

A post's text is its author's commentary; a reshare keeps the reshared post's text too, after a
"Reshared from <name>:" line and quoted, so it is never mistaken for the author's own words. Comments,
"more posts" rails and the post's JSON-LD copy are never read. A Pulse article goes through the one
article extraction path (`extraction.py`) with LinkedIn's hints.
"""

from __future__ import annotations

import time
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag

from llm_engineering.application.crawlers.base import CrawlerConfig
from llm_engineering.application.crawlers.browser_crawler import POLL_S, BrowserCrawler
from llm_engineering.application.crawlers.extraction import PageHints, extract_article
from llm_engineering.application.crawlers.markdown import fragment_text
from llm_engineering.application.crawlers.metadata import meta_content, text_of
from llm_engineering.application.crawlers.walls import (
    AUTH_WALL_TEXTS,
    AUTH_WALL_URL_PARTS,
    detect_auth_wall,
    detect_bot_wall,
)
from llm_engineering.application.ports import Browser, DomainThrottle
from llm_engineering.domain.documents import ArticleDocument, PostDocument, UserDocument
from llm_engineering.domain.errors import AuthRequiredError, BotWallError, BrowserError, CrawlError
from llm_engineering.domain.types import Platform

LINKEDIN_LOGIN_URL = "https://www.linkedin.com/login"
_LOGIN_PAGE_PARTS = ("/login", "/uas/login", "/checkpoint", "/challenge")

# --- posts -------------------------------------------------------------------------------------------------------
# The post itself: public post page (logged out), logged-in feed update, older layouts.
POST_CARD_SELECTORS = (
    "article.main-feed-activity-card",
    "[data-test-id=main-feed-activity-card]",
    ".feed-shared-update-v2",
    "[data-urn*='urn:li:activity']",
)
# The author's text inside the card.
POST_TEXT_SELECTORS = (
    "[data-test-id=main-feed-activity-card__commentary]",
    ".feed-shared-update-v2__description .update-components-text",
    ".feed-shared-update-v2__description",
    ".update-components-text",
    ".feed-shared-inline-show-more-text",
    ".feed-shared-text",
    ".attributed-text-segment-list__content",
)
# A reshared post inside the card, its text and its author.
RESHARE_SELECTORS = (
    "[data-test-id=feed-reshare-content]",
    ".feed-reshare-content",
    ".update-components-mini-update-v2",
    ".feed-shared-mini-update-v2",
    ".feed-shared-update-v2__update-content-wrapper",
)
RESHARE_TEXT_SELECTORS = (
    "[data-test-id=feed-reshare-content__commentary]",
    ".update-components-text",
    ".feed-shared-text",
    ".attributed-text-segment-list__content",
)
RESHARE_AUTHOR_SELECTORS = (
    "[data-test-id=feed-reshare-content__entity-lockup] [data-tracking-control-name*=actor-name]",
    "[data-test-id=feed-reshare-content__entity-lockup] a",
    ".update-components-actor__title span[aria-hidden=true]",
    ".update-components-actor__name",
    ".feed-shared-actor__name",
)
# Never the post: comments (they reuse the post text's classes), "more posts" rails, the site's chrome.
POST_CHROME_SELECTORS = (
    ".comments",
    ".comments__container",
    "section.comment",
    ".comments-comments-list",
    ".comments-comment-item",
    "[data-test-id=related-posts]",
    ".related-posts",
    ".aside-section-container",
    ".right-rail",
    "nav",
    "header",
    "footer",
    "script",
    "style",
    "template",
    "noscript",
)
POST_IMAGE_SELECTORS = (
    "[data-test-id=feed-images-content] img",
    ".update-components-image img",
    ".feed-shared-image img",
    ".feed-images-content img",
)
RESHARE_MARKER = "Reshared from {name}:"

# --- Pulse articles ----------------------------------------------------------------------------------------------
PULSE_HINTS = PageHints(
    content=(
        "[data-test-id=article-content-blocks]",
        ".reader-article-content",
        "[itemprop=articleBody]",
        ".article-body",
        "article",
    ),
    title=("h1.pulse-title", "h1[data-test-id=article-title]", "h1.reader-article-header__title", "h1.article-title"),
    chrome=(
        ".artdeco-global-alert",
        ".comments",
        ".comments-section",
        ".article-comments",
        ".reader-social-bar",
        ".social-actions",
        ".related-articles",
        ".right-rail",
        ".aside-section-container",
        "header",
        "footer",
    ),
    site_names=("LinkedIn",),
)
PULSE_TEXT_SELECTOR = ", ".join(PULSE_HINTS.content[:4]) + ", article p"


def is_linkedin_article(link: str) -> bool:
    """linkedin.com/pulse/... (long-form articles); every other LinkedIn link is a post."""
    link = link.strip()
    if "://" not in link:
        link = f"https://{link}"
    parts = urlsplit(link)
    host = (parts.hostname or "").lower()
    return (host == "linkedin.com" or host.endswith(".linkedin.com")) and parts.path.lower().startswith("/pulse/")


class _LinkedInBrowserCrawler(BrowserCrawler):
    """Login, walls and page loading shared by LinkedIn posts and articles."""

    platform = Platform.LINKEDIN
    give_up_words = AUTH_WALL_TEXTS
    give_up_url_parts = AUTH_WALL_URL_PARTS
    text_selector = ", ".join(POST_TEXT_SELECTORS)

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

    def fetch(self, link: str) -> tuple[BeautifulSoup, str, int | None]:
        """Log in once if configured, open the link, wait for its text; the parsed page, final URL, status."""
        if self.has_credentials and not self._logged_in:
            self._login(link)
        status = self.load(link)
        with self.browser_errors(link):
            if status is None or status < 400:
                self.wait_for_text(self.text_selector, 1)
            soup = self.page_soup()
            url = self.current_url
        wall = detect_bot_wall(soup)
        if wall:
            raise BotWallError(link, f"{wall}; LinkedIn refused the headless browser, try later")
        return soup, url, status

    def no_content_error(self, link: str, soup: BeautifulSoup, url: str, status: int | None, what: str) -> CrawlError:
        auth = detect_auth_wall(soup, url)
        if auth:
            return AuthRequiredError(link, self._auth_hint(auth))
        if status is not None and status >= 400:
            return CrawlError(link, f"HTTP {status}")
        return CrawlError(link, f"no {what} found")

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


class LinkedInCrawler(_LinkedInBrowserCrawler):
    """A LinkedIn post (`/posts/...`, `/feed/update/...`): its text, a reshared post's text, its image."""

    def crawl(self, link: str, author: UserDocument) -> PostDocument:
        soup, url, status = self.fetch(link)
        title = meta_content(soup, "og:title", "twitter:title") or text_of(soup.find("title"))
        post = read_post(soup, url)
        if post is None:
            raise self.no_content_error(link, soup, url, status, "post text")
        text, image = post
        content = {"Content": text}
        if title:
            content["Title"] = title
        return self.document(PostDocument, link, author, content, image=image)


class LinkedInArticleCrawler(_LinkedInBrowserCrawler):
    """A LinkedIn Pulse article (`linkedin.com/pulse/...`): the one article extraction path, LinkedIn's hints."""

    text_selector = PULSE_TEXT_SELECTOR

    def crawl(self, link: str, author: UserDocument) -> ArticleDocument:
        soup, url, status = self.fetch(link)
        # A public article page carries a sign-in form too: only a page without the article is a wall.
        has_article = soup.select_one(", ".join(PULSE_HINTS.content[:4])) is not None
        if (status is not None and status >= 400) or (not has_article and detect_auth_wall(soup, url)):
            raise self.no_content_error(link, soup, url, status, "article text")
        wall = detect_auth_wall(soup, url)  # before extraction, which strips the page's forms and chrome
        try:
            content = extract_article(soup, link, url, PULSE_HINTS)
        except CrawlError:
            if wall:
                raise AuthRequiredError(link, self._auth_hint(wall)) from None
            raise
        return self.document(ArticleDocument, link, author, content)


def read_post(soup: BeautifulSoup, base_url: str) -> tuple[str, str | None] | None:
    """(text, image link) of the post on a LinkedIn post page, or None when the page shows no post text."""
    for selector in POST_CHROME_SELECTORS:
        for tag in soup.select(selector):
            if not tag.decomposed:
                tag.decompose()
    card = _post_card(soup)
    reshare = _first(card, RESHARE_SELECTORS)
    own_node = next(
        (
            node
            for selector in POST_TEXT_SELECTORS
            for node in card.select(selector)
            if reshare is None or not _inside(node, reshare)
        ),
        None,
    )
    own = fragment_text(own_node, base_url) if own_node is not None else ""
    parts = [own] if own else []
    if reshare is not None:
        reshared_node = _first(reshare, RESHARE_TEXT_SELECTORS)
        reshared = fragment_text(reshared_node, base_url) if reshared_node is not None else ""
        if reshared and reshared != own:
            name = text_of(_first(reshare, RESHARE_AUTHOR_SELECTORS)) or "another member"
            quoted = "\n".join(f"> {line}" if line else ">" for line in reshared.split("\n"))
            parts.append(f"{RESHARE_MARKER.format(name=name)}\n\n{quoted}")
    if not parts:
        return None
    return "\n\n".join(parts), _image_url(card, base_url, exclude=reshare)


def _post_card(soup: BeautifulSoup) -> Tag:
    for selector in POST_CARD_SELECTORS:
        for card in soup.select(selector):
            if card.select_one(", ".join(POST_TEXT_SELECTORS)) is not None:
                return card
    return soup.body or soup


def _first(root: Tag, selectors: tuple[str, ...]) -> Tag | None:
    return next((node for s in selectors if (node := root.select_one(s)) is not None), None)


def _inside(node: Tag, container: Tag) -> bool:
    return node is container or any(parent is container for parent in node.parents)


def _image_url(card: Tag, base_url: str, exclude: Tag | None = None) -> str | None:
    """The post's own picture; a reshare's picture when the post has none of its own."""
    images = [img for selector in POST_IMAGE_SELECTORS for img in card.select(selector)]
    own = [img for img in images if exclude is None or not _inside(img, exclude)]
    for img in own or images:
        src = str(img.get("src") or img.get("data-delayed-url") or img.get("data-src") or "").strip()
        if src and not src.startswith("data:"):
            return urljoin(base_url, src)
    return None
