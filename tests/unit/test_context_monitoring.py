"""Monitoring off (no OPIK_URL): stage timings still measured, no Opik client, nothing sent."""

from __future__ import annotations

import pytest

from llm_engineering.infrastructure.llm.monitoring import Tracer
from llm_engineering.settings import Settings


def test_tracing_off_costs_nothing_but_timings_remain():
    tracer = Tracer(Settings(opik_url=None))
    assert tracer.client is None and not tracer.enabled
    trace = tracer.start("rag", input={"query": "q"})
    assert not trace.traced
    with trace.stage("search") as stage:
        stage.output = {"hits": 3}
    with pytest.raises(ValueError), trace.stage("generation"):
        raise ValueError("boom")
    assert set(trace.timings_ms) == {"search", "generation"} and trace.total_ms() >= 0
    trace.end(output={"answer": "a"})  # a no-op, never an error
    tracer.flush()
