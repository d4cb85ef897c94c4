"""Blue/green publishing of a versioned store folder: one writer edits a private copy and publishes it as the next
version; readers answer from their copy of the published version and switch to a newer one off the request path.

`BlueGreenStore` holds the views, the writer's work copy, the publish loop (after `publish_idle_s` without
writes, at most every `publish_max_delay_s`, at close) and the switch; a subclass says how a copy is opened
(`_open_view`) and sealed before publishing (`_seal`) — `EdgeFeatureStore` does it for Qdrant's in-process engine.
The folder layout, locks and garbage collection are `versions.py`'s; the versions themselves are the shared
artifact store's.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from loguru import logger

from llm_engineering.domain.errors import ServiceUnavailableError

from .versions import READERS, WORK, PrivateCopy, VersionedFolder


class OpenView:
    """A private copy opened by this process; a subclass adds the engine's handles on it and closes them."""

    def __init__(self, copy: PrivateCopy, writer: bool) -> None:
        self.copy = copy
        self.writer = writer

    @property
    def version(self) -> str | None:
        return self.copy.version

    def close(self) -> None:
        """Release the engine's handles (the copy itself is released by the caller)."""


class BlueGreenStore:
    """Views, the writer's work copy, publishing and switching; thread-safe (one lock around the engine)."""

    def __init__(
        self,
        path: Path | str,
        *,
        refresh_interval_s: float = 1.0,
        publish_idle_s: float = 1.0,
        publish_max_delay_s: float = 15.0,
        grace_s: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.refresh_interval_s = refresh_interval_s
        self.publish_idle_s = publish_idle_s
        self.publish_max_delay_s = publish_max_delay_s
        self.folder = VersionedFolder(self.path, grace_s=grace_s)
        self._lock = threading.RLock()
        self._open: OpenView | None = None
        self._next_check = 0.0
        self._switcher: threading.Thread | None = None
        self._publisher: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._dirty = False
        self._first_dirty = 0.0
        self._last_write = 0.0
        self._last_publish = 0.0
        self._publish_cost_s = 0.0
        self._collected = False
        self._failed: BaseException | None = None
        self.last_published: str | None = None

    # --- views -------------------------------------------------------------------------------------------
    def _reader(self) -> OpenView | None:
        """The copy reads go to: the writer's work copy, else the published version (switched at most once a
        `refresh_interval_s`). Call with the lock held."""
        if self._closed:
            raise RuntimeError(f"the vector store at {self.path} is closed")
        if self.folder.is_writer:
            return self._work()
        now = time.monotonic()
        if self._open is not None and now < self._next_check:
            return self._open
        self._next_check = now + self.refresh_interval_s
        current = self.folder.current()
        if current is None or (self._open is not None and self._open.version == current):
            return self._open
        if self._open is None:  # nothing to answer from yet: switch now
            self._collect_once()
            self._open = self._open_view(self.folder.checkout(READERS, current), writer=False)
            logger.info("Vector store: opened version {} of {}", current, self.path)
        elif self._switcher is None or not self._switcher.is_alive():
            self._switcher = threading.Thread(
                target=self._switch, args=(current,), name="vector-store-switch", daemon=True
            )
            self._switcher.start()
        return self._open

    def _switch(self, version: str) -> None:
        """Copy and open the new version off the request path, then swap it in."""
        started = time.perf_counter()
        try:
            fresh = self._open_view(self.folder.checkout(READERS, version), writer=False)
        except Exception:  # noqa: BLE001 - keep serving the old version; the next poll retries
            logger.exception("Vector store: could not open version {} of {}", version, self.path)
            return
        with self._lock:
            if self._closed or self.folder.is_writer:
                old = fresh
            else:
                old, self._open = self._open, fresh
        if old is not None:
            old.close()
            old.copy.release()
        logger.info(
            "Vector store: switched to version {} of {} in {:.0f} ms",
            version,
            self.path,
            (time.perf_counter() - started) * 1000,
        )

    def _work(self) -> OpenView:
        """The writer's private copy of the current version (taken on the first write). Lock held."""
        if self._failed is not None:
            raise ServiceUnavailableError(
                f"Publishing the vector store at {self.path} failed ({self._failed}); the writes since the last "
                "published version were dropped. Fix the cause (disk space, permissions) and re-run the feature "
                "pipeline: it redoes every document without a published marker."
            ) from self._failed
        if self._open is not None and self._open.writer:
            return self._open
        self.folder.acquire_writer()  # raises, naming the other writer
        if self._open is not None:  # a reader copy: the work copy replaces it
            self._open.close()
            self._open.copy.release()
            self._open = None
        self._collect_once()
        self._open = self._open_view(self.folder.checkout(WORK, self.folder.current()), writer=True)
        if self._publisher is None:
            self._publisher = threading.Thread(target=self._publish_loop, name="vector-store-publish", daemon=True)
            self._publisher.start()
        return self._open

    def _collect_once(self) -> None:
        if not self._collected:
            self._collected = True
            self.folder.collect_garbage()

    def _written(self) -> None:
        now = time.monotonic()
        if not self._dirty:
            self._dirty = True
            self._first_dirty = now
        self._last_write = now

    # --- publishing ----------------------------------------------------------------------------------------
    def _publish_loop(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                if not self._dirty or self._closed:
                    continue
                now = time.monotonic()
                # Copying costs time proportional to the store: publish at most ~10% of the time.
                if now - self._last_publish < 10 * self._publish_cost_s:
                    continue
                if now - self._last_write >= self.publish_idle_s or now - self._first_dirty >= self.publish_max_delay_s:
                    try:
                        self._publish_locked()
                    except Exception:  # noqa: BLE001 - the next write or close retries
                        logger.exception("Vector store: publishing {} failed", self.path)

    def publish(self) -> str | None:
        """Publish the writer's pending changes now (readers switch within `refresh_interval_s`)."""
        with self._lock:
            return self._publish_locked()

    def _publish_locked(self) -> str | None:
        if not self._dirty or self._open is None or not self._open.writer:
            return None
        started = time.perf_counter()
        work = self._open
        self._open = None
        try:
            self._seal(work)
            work.close()
            version = self.folder.publish(work.copy)
        except BaseException as exc:
            work.copy.release()  # never publish a half-closed copy; readers keep the last good version
            self._dirty = False
            self._failed = exc  # the next write says so, instead of silently continuing without these writes
            raise
        self._dirty = False
        self._last_publish = time.monotonic()
        self._publish_cost_s = time.perf_counter() - started
        self.last_published = version
        self.folder.collect_garbage()
        cost_ms = self._publish_cost_s * 1000
        logger.info("Vector store: published version {} of {} ({:.0f} ms)", version, self.path, cost_ms)
        return version

    def close(self) -> None:
        """Publish pending writes, close the engine, remove private copies, release the writer lock."""
        self._stop.set()
        if self._publisher is not None:
            self._publisher.join(timeout=30)
        switcher = self._switcher
        if switcher is not None:
            switcher.join(timeout=60)
        with self._lock:
            if self._closed:
                return
            try:
                self._publish_locked()
            finally:
                self._closed = True
                if self._open is not None:
                    self._open.close()
                    self._open.copy.release()
                    self._open = None
                self.folder.release_writer()

    @property
    def closed(self) -> bool:
        return self._closed

    # --- what a subclass provides ------------------------------------------------------------------------------
    def _open_view(self, copy: PrivateCopy, writer: bool) -> OpenView:
        """Open a private copy (releasing it if opening fails)."""
        raise NotImplementedError

    def _seal(self, view: OpenView) -> None:
        """Make the writer's copy complete on disk before it is closed and published."""
