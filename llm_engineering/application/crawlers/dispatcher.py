"""Pick a crawler by link. One registry of (matcher, factory); crawlers are created lazily, once per batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from loguru import logger

from llm_engineering.application.crawlers.base import Crawler
from llm_engineering.application.crawlers.github import is_local_repository_link
from llm_engineering.domain.errors import CrawlError
from llm_engineering.domain.types import Platform

Matcher = Callable[[str], bool]
CrawlerFactory = Callable[[], Crawler]
WEB_SCHEMES = ("http", "https")


def host_of(link: str) -> str:
    """Lower-case host of a link; a bare 'medium.com/...' counts as https."""
    link = link.strip()
    if "://" not in link:
        link = f"https://{link}"
    return (urlsplit(link).hostname or "").lower()


def domain_matcher(domain: str) -> Matcher:
    """Matches `domain` and any of its subdomains (www.medium.com, ada.substack.com)."""
    domain = domain.lower().lstrip(".")

    def matches(link: str) -> bool:
        host = host_of(link)
        return host == domain or host.endswith(f".{domain}")

    matches.__name__ = f"domain_{domain}"
    return matches


def is_repository_link(link: str) -> bool:
    """github.com links, GitHub ssh URLs, file:// URLs and local paths."""
    link = link.strip()
    return domain_matcher("github.com")(link) or link.startswith("git@github.com:") or is_local_repository_link(link)


@dataclass
class _Registration:
    matcher: Matcher
    factory: CrawlerFactory
    platform: Platform
    instance: Crawler | None = None


class CrawlerDispatcher:
    """Routes links to crawlers. The first registration whose matcher accepts a link wins; links nobody
    claims go to the default (the generic article crawler in the composition root's dispatcher)."""

    def __init__(self, default: CrawlerFactory, default_platform: Platform = Platform.BLOG) -> None:
        self._registrations: list[_Registration] = []
        self._default = _Registration(lambda _link: True, default, default_platform)
        self._resources: list[Callable[[], None]] = []

    def register(self, matcher: Matcher | str, factory: CrawlerFactory, platform: Platform | None = None) -> None:
        """Route links accepted by `matcher` (a callable, or a domain that also covers its subdomains) to the
        crawler `factory()` builds on first use. `platform` defaults to the factory's `platform` attribute
        (crawler classes have one) or is read from the built crawler."""
        if isinstance(matcher, str):
            matcher = domain_matcher(matcher)
        resolved = platform or getattr(factory, "platform", None)
        registration = _Registration(matcher, factory, resolved)  # type: ignore[arg-type]
        self._registrations.append(registration)

    def add_resource(self, close: Callable[[], None]) -> None:
        """Something shared by several crawlers (a browser, an HTTP session) to release in `close()`."""
        self._resources.append(close)

    def _registration_for(self, link: str) -> _Registration:
        cleaned = (link or "").strip()
        if not cleaned:
            raise CrawlError(link or "<empty>", "empty link")
        for registration in self._registrations:
            if registration.matcher(cleaned):
                return registration
        scheme = urlsplit(cleaned).scheme.lower() if "://" in cleaned else "https"
        if scheme not in WEB_SCHEMES:
            raise CrawlError(link, f"unsupported link scheme {scheme!r}: use http(s)://, a git URL or a local path")
        return self._default

    def get_crawler(self, link: str) -> Crawler:
        registration = self._registration_for(link)
        if registration.instance is None:
            registration.instance = registration.factory()
            if registration.platform is None:
                registration.platform = registration.instance.platform
        return registration.instance

    def platform_for(self, link: str) -> Platform:
        registration = self._registration_for(link)
        if registration.platform is None:  # a factory without a declared platform: build it to ask
            return self.get_crawler(link).platform
        return registration.platform

    def close(self) -> None:
        """Close every crawler created so far, then the shared browser and HTTP session. Safe to call twice."""
        for registration in [*self._registrations, self._default]:
            crawler, registration.instance = registration.instance, None
            if crawler is not None:
                try:
                    crawler.close()
                except Exception as exc:  # one crawler's cleanup must not leak the others' browsers
                    logger.warning(f"Closing {type(crawler).__name__} failed: {exc}")
        for close in self._resources:
            try:
                close()
            except Exception as exc:
                logger.warning(f"Releasing a crawler resource failed: {exc}")
