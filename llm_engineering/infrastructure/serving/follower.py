"""The RAG API's side of a hot switch: follow the serving state file and swap the RAGService atomically.

`ServingFollower.lease()` hands a request the service that answers now. At most every `check_interval_s` it stats
the state file (DATA_DIR/serving/active.json); when the file names another engine it asks the provider (the
composition root's `Container.rag_service_for(base_url, model_spec)`) for a service on it and swaps. Requests that
already hold the old service keep it to their end; the old service's LLM client is closed when its last request
ends (a reference count per service). The API never builds adapters itself.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from llm_engineering.infrastructure.serving.state import read_serving_state

CHECK_INTERVAL_S = 0.5


@dataclass
class _Entry:
    service: Any  # a RAGService
    base_url: str
    model_spec: str
    active: int = 0
    retired: bool = False
    closed: bool = False

    @property
    def label(self) -> str:
        config = getattr(self.service, "config", None)
        return getattr(config, "model_label", None) or self.model_spec


class ServingFollower:
    """Which RAGService answers now, following the serving state file (module doc).

    `default` serves while no state file exists (or it names the configured engine, `default_key` = (LLM_BASE_URL,
    LLM_MODEL_ID)); `build(base_url, model_spec)` makes the service for any other engine (None: never swap, e.g. an
    app given a built service in tests)."""

    def __init__(
        self,
        state_path: Path,
        default: Any,
        build: Callable[[str, str], Any] | None,
        *,
        default_key: tuple[str, str],
        check_interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self.state_path = Path(state_path)
        self.build = build
        self.check_interval_s = check_interval_s
        self._default = _Entry(default, *default_key)
        self._current = self._default
        self._retired: list[_Entry] = []
        self._signature: tuple[int, int, int] | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()
        self.swaps = 0

    @property
    def current(self) -> Any:
        """The service new requests get (after the last check)."""
        return self._current.service

    def refresh(self, force: bool = False) -> None:
        """Stat the state file (at most every `check_interval_s` unless `force`) and swap when it names another
        engine. A service that cannot be built is logged and retried at the next change of the file."""
        now = time.monotonic()
        if self.build is None or (not force and now < self._next_check):
            return
        with self._lock:
            self._next_check = now + self.check_interval_s
            try:
                stat = os.stat(self.state_path)
                signature: tuple[int, int, int] | None = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            except FileNotFoundError:
                signature = None
            except OSError as exc:
                logger.warning(f"serving state {self.state_path} unreadable: {exc}")
                return
            if signature == self._signature:
                return
            state = read_serving_state(self.state_path) if signature is not None else None
            key = (state.base_url, state.model_spec) if state is not None else None
            if key is None or key == (self._default.base_url, self._default.model_spec):
                target = self._default
            elif key == (self._current.base_url, self._current.model_spec):
                target = self._current
            else:
                try:
                    target = _Entry(self.build(*key), *key)
                except Exception as exc:  # keep answering with what works; the file is read again when it changes
                    logger.error(f"serving: cannot follow {key[1]} at {key[0]}: {type(exc).__name__}: {exc}")
                    self._signature = None
                    self._next_check = now + 5.0
                    return
            self._signature = signature
            if target is self._current:
                return
            previous, self._current = self._current, target
            target.retired = False
            if target in self._retired:
                self._retired.remove(target)
            previous.retired = True
            self._retired.append(previous)
            self.swaps += 1
            logger.info(
                f"serving: new requests answered by {target.label} at {target.base_url} "
                f"({previous.active} request(s) finish on {previous.label})"
            )

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[Any]:
        """The service that answers now, held until the request ends (its body streamed included)."""
        self.refresh()
        with self._lock:
            entry = self._current
            entry.active += 1
        try:
            yield entry.service
        finally:
            with self._lock:
                entry.active -= 1
                idle = [e for e in self._retired if e.active == 0 and not e.closed]
                for retired in idle:
                    retired.closed = True
                    self._retired.remove(retired)
            for retired in idle:
                await self._close_llm(retired)

    async def _close_llm(self, entry: _Entry) -> None:
        """Only the LLM client is the retired service's own: the retriever, stores and tracer are shared."""
        try:
            await entry.service.llm.aclose()
        except Exception as exc:
            logger.warning(f"serving: closing the LLM client of {entry.label}: {type(exc).__name__}: {exc}")
        if entry is self._default:
            entry.closed = False  # the configured engine's client reopens lazily if the state points back at it

    def describe(self) -> dict[str, Any]:
        """For GET /ready: the engine that answers now, and requests still finishing on older ones."""
        with self._lock:
            current = self._current
            draining = {e.label: e.active for e in self._retired if e.active}
        return {  # no base URL: /ready never shows where the dependencies live
            "model_spec": current.model_spec,
            "model": current.label,
            "draining": draining,
            "swaps": self.swaps,
        }

    async def aclose(self, *, close_current: bool) -> None:
        """At shutdown: every retired service's LLM client, and the current service (`close_current`: the app
        owns it) fully."""
        with self._lock:
            retired = [e for e in self._retired if not e.closed]
            self._retired.clear()
            current = self._current
        for entry in retired:
            await self._close_llm(entry)
        if close_current and current is not self._default and self._default not in retired:
            await self._close_llm(self._default)
        if close_current:
            await current.service.aclose()
