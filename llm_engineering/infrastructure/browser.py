"""Headless Chromium driven by Selenium (implements `ports.Browser`): created lazily, reused for a batch of
links, quit in `close()`. Selenium errors never leave this module: they become `BrowserError` / `CrawlError`.

Always the configured binaries (settings.chromium_binary / settings.chromedriver_path): a bare `Service()`
makes selenium-manager try to download a driver from the internet first.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from llm_engineering.domain.errors import BrowserError, CrawlError, ServiceUnavailableError
from llm_engineering.infrastructure.network_guard import NetworkPolicy
from llm_engineering.settings import Settings

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

INSTALL_HINT = "install it with: apt-get install -y chromium chromium-driver"

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--password-store=basic",
    "--mute-audio",
    "--window-size=1366,900",
    "--lang=en-US",
)

# The main document's HTTP status; Selenium has no API for it, Navigation Timing does (Chromium >= 109).
_STATUS_JS = "const e = performance.getEntriesByType('navigation')[0]; return e ? (e.responseStatus || null) : null;"


def _resolve_binary(path: str, what: str, setting: str) -> str:
    resolved = shutil.which(path) if not Path(path).is_absolute() else (path if Path(path).is_file() else None)
    if not resolved:
        raise ServiceUnavailableError(f"{what} not found at {path!r} (setting {setting}); {INSTALL_HINT}")
    return resolved


def _is_dead_session(exc: Exception) -> bool:
    if not hasattr(exc, "msg"):  # a socket/urllib3 error talking to chromedriver: the driver process is gone
        return True
    message = str(exc.msg or exc).lower()
    return any(m in message for m in ("invalid session id", "disconnected", "no such window", "session deleted"))


class BrowserSession:
    """One headless Chromium for a batch of links. Not started until a page is first opened."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = NetworkPolicy.from_settings(
            settings.crawler_allow_private_networks, settings.crawler_allowed_networks
        )
        self._driver: WebDriver | None = None
        self._profile_dir: str | None = None
        self._page_load_timeout: float | None = None
        self._start_error: str | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._driver is not None

    @property
    def driver(self) -> WebDriver:
        with self._lock:
            if self._driver is None:
                # A browser that cannot start will not start for the next link either: fail the rest fast.
                if self._start_error:
                    raise ServiceUnavailableError(self._start_error)
                try:
                    self._driver = self._start()
                except ServiceUnavailableError as exc:
                    self._start_error = str(exc)
                    raise
            return self._driver

    def _start(self) -> WebDriver:
        binary = _resolve_binary(self.settings.chromium_binary, "Chromium", "CHROMIUM_BINARY")
        driver_path = _resolve_binary(self.settings.chromedriver_path, "chromedriver", "CHROMEDRIVER_PATH")

        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-agent={self.settings.crawler_user_agent}")
        # A fresh profile per session: no cookies or cache leak between batches, no lock on a shared profile.
        self._profile_dir = tempfile.mkdtemp(prefix="llm-twin-chromium-")
        options.add_argument(f"--user-data-dir={self._profile_dir}")
        try:
            driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        except WebDriverException as exc:
            self._remove_profile()
            message = (exc.msg or str(exc)).strip().splitlines()[0] if (exc.msg or str(exc)) else repr(exc)
            raise ServiceUnavailableError(f"Chromium could not start ({message}); {INSTALL_HINT}") from exc
        self._set_page_load_timeout(driver, self.settings.crawler_timeout_s)
        logger.debug(f"Started headless Chromium ({binary}) with profile {self._profile_dir}")
        return driver

    def _set_page_load_timeout(self, driver: WebDriver, timeout_s: float) -> None:
        if self._page_load_timeout != timeout_s:
            driver.set_page_load_timeout(timeout_s)
            driver.set_script_timeout(timeout_s)
            self._page_load_timeout = timeout_s

    def open(self, url: str, timeout_s: float | None = None) -> int | None:
        """Load `url` and return the main document's HTTP status (None when unknown, e.g. file://).

        Raises `CrawlError` naming the URL on a page-load timeout or a network error, and
        `ServiceUnavailableError` when Chromium is missing or cannot start.
        """
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from urllib3.exceptions import HTTPError

        timeout = self.settings.crawler_timeout_s if timeout_s is None else timeout_s
        if url.lower().startswith(("http://", "https://")):
            # Web targets pass the network guard; the dispatcher never hands a crawler any other scheme (a local
            # file is opened only by the project itself, e.g. to check a rendered report).
            self.policy.check(url)
        for attempt in (1, 2):
            driver = self.driver
            try:
                self._set_page_load_timeout(driver, timeout)
                driver.get(url)
                break
            except TimeoutException as exc:
                self._stop_loading(driver)
                raise CrawlError(url, f"page did not load within {timeout:g}s") from exc
            except (WebDriverException, OSError, HTTPError) as exc:
                # chromedriver gone -> urllib3/socket errors; Chromium gone -> "invalid session id" and kin.
                raw = getattr(exc, "msg", None) or str(exc) or exc.__class__.__name__
                message = raw.strip().splitlines()[0] if raw.strip() else exc.__class__.__name__
                if attempt == 1 and _is_dead_session(exc):
                    # Chromium crashed or was killed: one fresh browser for the rest of the batch.
                    logger.warning(f"Chromium session lost ({message[:80]}); starting a new one")
                    self.close()
                    continue
                raise CrawlError(url, f"browser could not open the page: {message}") from exc
        try:
            final_url = driver.current_url
        except WebDriverException:
            final_url = url
        if final_url != url and final_url.startswith(("http://", "https://")):
            try:
                self.policy.check(final_url, url)  # Chromium followed a redirect: where did it land?
            except CrawlError:
                self._blank(driver)  # leave nothing of the refused page in the tab
                raise
        try:
            status = driver.execute_script(_STATUS_JS)
        except WebDriverException:
            return None
        return int(status) if status else None

    @staticmethod
    def _blank(driver: WebDriver) -> None:
        try:
            driver.get("about:blank")
        except Exception:  # best effort
            pass

    # --- the page that is open (ports.Browser) -------------------------------------------------------------------
    def _call(self, what: str, action):
        from selenium.common.exceptions import WebDriverException

        try:
            return action(self.driver)
        except WebDriverException as exc:
            message = (exc.msg or "").strip().splitlines()[0] if exc.msg else exc.__class__.__name__
            raise BrowserError(f"{what}: {message}") from exc

    def run_script(self, script: str, *args: Any) -> Any:
        return self._call("script failed", lambda driver: driver.execute_script(script, *args))

    def page_source(self) -> str:
        return self._call("could not read the page", lambda driver: driver.page_source)

    def current_url(self) -> str:
        return self._call("could not read the URL", lambda driver: driver.current_url)

    def exists(self, css_selector: str) -> bool:
        from selenium.webdriver.common.by import By

        return bool(self._call("lookup failed", lambda driver: driver.find_elements(By.CSS_SELECTOR, css_selector)))

    def _element(self, driver: WebDriver, css_selector: str):
        from selenium.common.exceptions import NoSuchElementException
        from selenium.webdriver.common.by import By

        try:
            return driver.find_element(By.CSS_SELECTOR, css_selector)
        except NoSuchElementException as exc:
            raise BrowserError(f"no element matches {css_selector!r} on {driver.current_url}") from exc

    def type_text(self, css_selector: str, text: str) -> None:
        self._call("typing failed", lambda driver: self._element(driver, css_selector).send_keys(text))

    def click(self, css_selector: str) -> None:
        self._call("click failed", lambda driver: self._element(driver, css_selector).click())

    @staticmethod
    def _stop_loading(driver: WebDriver) -> None:
        # Leave the tab usable for the next link instead of still waiting on the slow one.
        try:
            driver.execute_script("window.stop();")
        except Exception:  # best effort; the next get() navigates away anyway
            pass

    def _remove_profile(self) -> None:
        if self._profile_dir:
            shutil.rmtree(self._profile_dir, ignore_errors=True)
            self._profile_dir = None

    def close(self) -> None:
        with self._lock:
            driver, self._driver = self._driver, None
            self._page_load_timeout = None
            self._start_error = None
        if driver is not None:
            try:
                driver.quit()
            except Exception as exc:  # a crashed browser must not break the batch's cleanup
                logger.warning(f"Chromium did not quit cleanly: {exc}")
        self._remove_profile()
