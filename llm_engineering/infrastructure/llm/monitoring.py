"""Prompt monitoring: per-stage timings always, Opik traces of every RAG stage when Opik is configured.

With `OPIK_URL` unset nothing Opik-related is imported or contacted: zero cost, zero log noise. With it set, one
Opik client is created lazily; each request becomes a trace and each stage (self-query, expansion, search,
fusion, context, generation) a span with its input, output, token usage and model. Opik sends in a background
thread, so tracing never blocks a request; if the client cannot be created we log once and carry on untraced.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from llm_engineering.settings import Settings


@dataclass
class StageRecord:
    """What a stage reports about itself; filled inside the `with trace.stage(...)` block."""

    output: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, int] | None = None  # {"prompt_tokens", "completion_tokens", "total_tokens"}
    model: str | None = None


class RequestTrace:
    """One request: stage timings (ms) always; an Opik trace with one span per stage when enabled."""

    def __init__(self, opik_trace: Any | None = None) -> None:
        self._opik_trace = opik_trace
        self.timings_ms: dict[str, float] = {}
        self._started = time.perf_counter()

    @property
    def traced(self) -> bool:
        return self._opik_trace is not None

    @contextmanager
    def stage(
        self, name: str, input: dict[str, Any] | None = None, span_type: str = "general"
    ) -> Iterator[StageRecord]:
        record = StageRecord()
        span = (
            self._safe(lambda: self._opik_trace.span(name=name, type=span_type, input=input)) if self.traced else None
        )
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield record
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.timings_ms[name] = round((time.perf_counter() - started) * 1000, 1)
            if span is not None:
                kwargs: dict[str, Any] = {
                    "output": record.output,
                    "metadata": {**record.metadata, "duration_ms": self.timings_ms[name]},
                }
                if record.usage:
                    kwargs["usage"] = record.usage
                if record.model:
                    kwargs["model"] = record.model
                if error is not None:
                    kwargs["error_info"] = {"exception_type": type(error).__name__, "message": str(error)[:500]}
                self._safe(lambda: span.end(**kwargs))

    def total_ms(self) -> float:
        return round((time.perf_counter() - self._started) * 1000, 1)

    def end(self, output: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        if not self.traced:
            return
        kwargs: dict[str, Any] = {"output": output, "metadata": {"timings_ms": self.timings_ms}}
        if error is not None:
            kwargs["error_info"] = {"exception_type": type(error).__name__, "message": str(error)[:500]}
        self._safe(lambda: self._opik_trace.end(**kwargs))

    @staticmethod
    def _safe(call):
        # Monitoring must never break answering: a tracing failure is logged at debug level and ignored.
        try:
            return call()
        except Exception as exc:
            logger.debug(f"Opik tracing call failed: {exc!r}")
            return None


class Tracer:
    """Creates RequestTraces; Opik-backed only when settings.opik_url is set."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = bool(settings.opik_url)
        self._settings = settings
        self._client: Any | None = None
        self._lock = threading.Lock()
        self._failed = False

    def _opik(self) -> Any | None:
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

    @property
    def client(self) -> Any | None:
        return self._opik()

    def start(self, name: str, input: dict[str, Any], metadata: dict[str, Any] | None = None) -> RequestTrace:
        client = self._opik()
        if client is None:
            return RequestTrace()
        trace = RequestTrace._safe(
            lambda: client.trace(name=name, input=input, metadata=metadata, project_name=self._settings.opik_project)
        )
        return RequestTrace(trace)

    def flush(self) -> None:
        if self._client is not None:
            RequestTrace._safe(lambda: self._client.flush(timeout=5))
