"""Prompt monitoring: per-stage timings always, Opik traces of every RAG stage when Opik is configured.

With `OPIK_URL` unset nothing Opik-related is imported or contacted: zero cost, zero log noise. With it set, one
Opik client is created lazily; each request becomes a trace and each stage (self-query, expansion, search,
fusion, context, generation) a span with its input, output, token usage, model and exact start/end times.
Trace and spans are logged once, complete, when the request ends (no create-then-update round trips), and Opik
sends them from a background thread, so tracing never blocks a request. If the client cannot be created we
log once and carry on untraced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from llm_engineering.settings import Settings


@dataclass
class StageRecord:
    """What a stage reports about itself; filled inside the `with trace.stage(...)` block."""

    name: str = ""
    span_type: str = "general"
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, int] | None = None  # {"prompt_tokens", "completion_tokens", "total_tokens"}
    model: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: BaseException | None = None


def _error_info(error: BaseException) -> dict[str, str]:
    return {"exception_type": type(error).__name__, "message": str(error)[:500], "traceback": ""}


class RequestTrace:
    """One request: stage timings (ms) always; stage records kept for Opik only when tracing is on."""

    def __init__(
        self,
        client: Any | None = None,
        name: str = "rag",
        input: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> None:
        self._client = client
        self._name = name
        self._input = input
        self._metadata = metadata or {}
        self._project = project
        self._stages: list[StageRecord] = []
        self._start_time = datetime.now(UTC)
        self._started = time.perf_counter()
        self.timings_ms: dict[str, float] = {}

    @property
    def traced(self) -> bool:
        return self._client is not None

    @contextmanager
    def stage(
        self, name: str, input: dict[str, Any] | None = None, span_type: str = "general"
    ) -> Iterator[StageRecord]:
        record = StageRecord(name=name, span_type=span_type, input=input if self.traced else None)
        record.start_time = datetime.now(UTC)
        started = time.perf_counter()
        try:
            yield record
        except BaseException as exc:
            record.error = exc
            raise
        finally:
            self.timings_ms[name] = round((time.perf_counter() - started) * 1000, 1)
            if self.traced:
                record.end_time = datetime.now(UTC)
                record.metadata["duration_ms"] = self.timings_ms[name]
                self._stages.append(record)

    def total_ms(self) -> float:
        return round((time.perf_counter() - self._started) * 1000, 1)

    def end(self, output: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        if not self.traced:
            return
        client = self._client
        self._client = None  # end once

        def send() -> None:
            from opik import id_helpers

            trace_id = id_helpers.generate_id()
            client.trace(
                id=trace_id,
                name=self._name,
                start_time=self._start_time,
                end_time=datetime.now(UTC),
                input=self._input,
                output=output,
                metadata={**self._metadata, "timings_ms": self.timings_ms},
                error_info=_error_info(error) if error is not None else None,
                project_name=self._project,
            )
            for record in self._stages:
                client.span(
                    trace_id=trace_id,
                    name=record.name,
                    type=record.span_type,
                    start_time=record.start_time,
                    end_time=record.end_time,
                    input=record.input,
                    output=record.output,
                    metadata=record.metadata,
                    usage=record.usage,
                    model=record.model,
                    error_info=_error_info(record.error) if record.error is not None else None,
                    project_name=self._project,
                )

        try:
            send()
        except Exception as exc:  # monitoring must never break answering
            logger.debug(f"Opik tracing failed: {exc!r}")


class Tracer:
    """Creates RequestTraces; Opik-backed only when settings.opik_url is set."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = bool(settings.opik_url)
        self._settings = settings
        self._client: Any | None = None
        self._lock = threading.Lock()
        self._failed = False

    @property
    def client(self) -> Any | None:
        """The Opik client (created on first use), or None when tracing is off or unavailable."""
        if not self.enabled or self._failed:
            return None
        with self._lock:
            if self._client is None and not self._failed:
                try:
                    import opik

                    api_key = self._settings.opik_api_key
                    self._client = opik.Opik(
                        project_name=self._settings.opik_project,
                        host=self._settings.opik_url,
                        api_key=api_key.get_secret_value() if api_key else None,
                        _show_misconfiguration_message=False,
                    )
                except Exception as exc:
                    self._failed = True
                    logger.warning(f"Opik tracing disabled: cannot create a client for OPIK_URL: {exc}")
        return self._client

    def start(self, name: str, input: dict[str, Any], metadata: dict[str, Any] | None = None) -> RequestTrace:
        return RequestTrace(self.client, name, input, metadata, self._settings.opik_project)

    def flush(self) -> None:
        if self._client is not None:
            try:
                self._client.flush(timeout=5)
            except Exception as exc:
                logger.debug(f"Opik flush failed: {exc!r}")
