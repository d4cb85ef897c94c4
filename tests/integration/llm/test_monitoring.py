"""Opik traces of every RAG stage (real Opik SDK, its local recorder; no Opik server exists here)."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.slow

STAGES = ["self_query", "query_expansion", "search", "fusion", "context", "generation"]


def test_every_rag_stage_is_a_span_with_usage(rag_corpus_settings, monkeypatch):
    import opik

    from llm_engineering.infrastructure.local_services import find_free_port
    from llm_engineering.wiring import Container

    monkeypatch.setenv("OPIK_TRACK_DISABLE", "false")
    settings = rag_corpus_settings.model_copy(update={"opik_url": f"http://127.0.0.1:{find_free_port()}/api"})
    container = Container(settings)
    service = container.rag_service
    assert service.tracer.client is not None

    async def scenario():
        answer = await service.answer("How should documents be chunked?", max_tokens=8)
        events = [event async for event in service.stream("What is hybrid search?", max_tokens=8)]
        await service.llm.aclose()
        return answer, events

    with opik.record_traces_locally(client=service.tracer.client) as storage:
        answer, events = asyncio.run(scenario())
        traces = storage.trace_trees
    container.close()
    assert sorted(t.name for t in traces) == ["rag", "rag_stream"]
    for trace in traces:
        assert [span.name for span in trace.spans] == STAGES
        generation = trace.spans[-1]
        assert generation.type == "llm" and generation.usage["completion_tokens"] > 0
        assert all(span.end_time >= span.start_time for span in trace.spans)
        assert set(trace.output) == {"answer", "sources"}
    assert set(answer.timings_ms) >= {*STAGES, "total"}
    assert events[-1].kind == "done" and "first_token" in events[-1].data.timings_ms
