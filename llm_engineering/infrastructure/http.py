"""A polite HTTP fetcher for crawlers: real user agent, per-domain delay, timeouts, retries with backoff.

Retries cover rate limits (429) and server errors (5xx) and dropped connections. A timeout is not retried:
a server too slow once is usually too slow again, and retrying would multiply the wait per link.
"""

from __future__ import annotations

import email.utils
import threading
import time
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

from loguru import logger

from llm_engineering.domain.errors import CrawlError
from llm_engineering.domain.pages import FetchedPage
from llm_engineering.infrastructure.network_guard import NetworkPolicy
from llm_engineering.settings import Settings

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A server asking to come back later than this is treated as a failure for this run, not waited for.
MAX_RETRY_AFTER_S = 60.0


def domain_of(url: str) -> str:
    """The host a delay applies to ('' for URLs without one, e.g. file://)."""
    return (urlsplit(url).hostname or "").lower()


class DomainThrottle:
    """Keeps at least `delay_s` seconds between two hits to the same domain (shared by HTTP and browser)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = max(0.0, delay_s)
        self._last_hit: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, url: str) -> None:
        domain = domain_of(url)
        if not domain or self.delay_s <= 0:
            return
        with self._lock:
            now = time.monotonic()
            pause = self._last_hit.get(domain, float("-inf")) + self.delay_s - now
            # Book the slot before sleeping so concurrent callers queue up behind it.
            self._last_hit[domain] = now + max(0.0, pause)
        if pause > 0:
            time.sleep(pause)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _declared_charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"').lower()
    return None


class PoliteHttpClient:
    """One `requests.Session` per crawl batch. `requests` is imported lazily so importing this is free."""

    def __init__(self, settings: Settings, throttle: DomainThrottle | None = None) -> None:
        self.settings = settings
        self.throttle = throttle or DomainThrottle(settings.crawler_domain_delay_s)
        self.policy = NetworkPolicy.from_settings(
            settings.crawler_allow_private_networks, settings.crawler_allowed_networks
        )
        self._session = None

    @property
    def session(self):
        if self._session is None:
            import requests

            session = requests.Session()
            session.headers.update(
                {
                    "User-Agent": self.settings.crawler_user_agent,
                    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                    "Accept-Language": "en-US,en;q=0.9",
                }
            )
            self._session = session
        return self._session

    def get(self, url: str, *, raise_for_status: bool = True) -> FetchedPage:
        """GET `url`. Raises `CrawlError` (naming the URL) on timeouts, network errors, a refused target (see
        network_guard.py: the link and every redirect hop are checked) and, by default, HTTP >= 400."""
        link = url
        for _ in range(max(0, self.settings.crawler_max_redirects) + 1):
            self.policy.check(url, link)
            response, attempts = self._get_once(url, link)
            location = response.headers.get("Location")
            if response.is_redirect and location:
                response.close()
                url = urljoin(url, location)  # the next hop is checked before it is fetched
                continue
            result = FetchedPage(
                url=response.url,
                status=response.status_code,
                reason=response.reason or "",
                content=response.content,
                charset=_declared_charset(response.headers.get("Content-Type", "")),
                headers={key.lower(): value for key, value in response.headers.items()},
                attempts=attempts,
            )
            if raise_for_status:
                result.raise_for_status(link)
            return result
        raise CrawlError(link, f"more than {self.settings.crawler_max_redirects} redirects")

    def _get_once(self, url: str, link: str):
        """One URL without following redirects, with retries on 429/5xx and dropped connections."""
        import requests

        retries = max(0, self.settings.crawler_max_retries)
        timeout = self.settings.crawler_timeout_s
        attempt = 0
        while True:
            self.throttle.wait(url)
            try:
                response = self.session.get(url, timeout=timeout, allow_redirects=False)
            except requests.Timeout as exc:
                raise CrawlError(link, f"timed out after {timeout:g}s") from exc
            except requests.ConnectionError as exc:
                if attempt < retries:
                    self._sleep_before_retry(url, attempt, None, f"connection error ({exc.__class__.__name__})")
                    attempt += 1
                    continue
                raise CrawlError(link, f"connection failed after {attempt + 1} attempt(s): {exc}") from exc
            except requests.RequestException as exc:  # invalid URL, missing scheme...
                raise CrawlError(link, f"request failed: {exc}") from exc

            if response.status_code in RETRY_STATUSES and attempt < retries:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
                    raise CrawlError(
                        link, f"HTTP {response.status_code}: server asks to retry after {retry_after:.0f}s; try later"
                    )
                response.close()
                self._sleep_before_retry(url, attempt, retry_after, f"HTTP {response.status_code}")
                attempt += 1
                continue
            return response, attempt + 1

    def _sleep_before_retry(self, url: str, attempt: int, retry_after: float | None, why: str) -> None:
        # Exponential backoff unless the server said how long to wait (Retry-After wins).
        pause = retry_after if retry_after is not None else self.settings.crawler_backoff_s * (2**attempt)
        logger.debug(f"{why} from {url}; retry {attempt + 1}/{self.settings.crawler_max_retries} in {pause:.2f}s")
        time.sleep(pause)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
