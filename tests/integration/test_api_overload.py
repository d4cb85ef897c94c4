"""The API under load, disconnects and oversized work: real uvicorn, real sockets and HTTP clients; the RAG
service is wired from fakes of the ports (a scripted, deliberately slow LLM) so the timings are controlled.
The same paths against the real vLLM are measured by bench/bench_api_load.py.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from llm_engineering.infrastructure.api.app import create_app
from tests.fakes import ScriptedLLM, WordCounter, fake_rag_corpus, fake_services
from tests.integration.llm.fixtures_llm import ServedApp

TOPICS = {
    ("Ada Lovelace", "lora"): "LoRA adapters train a few low rank matrices while the base model stays frozen.",
    ("Grace Hopper", "serving"): "Serving with continuous batching keeps the accelerator busy under load.",
}
CHAT = "/v1/chat/completions"


@pytest.fixture
def serve(settings):
    """Start the real app around fake services; every app started is stopped afterwards."""
    apps: list[ServedApp] = []

    def start(llm: ScriptedLLM, counter=None, rag_config: dict | None = None, **overrides) -> ServedApp:
        app_settings = settings.model_copy(update=overrides)
        rag, search, _ = fake_services(fake_rag_corpus(TOPICS), llm, counter=counter, **(rag_config or {}))
        app = ServedApp(app_settings, create_app(app_settings, rag_service=rag, search_service=search)).start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


def _admission(app: ServedApp) -> dict:
    return httpx.get(f"{app.url}/health").json()["admission"]


def test_streams_abandoned_before_the_first_token_release_their_slots(serve):
    """Regression (#14): 8 streamed requests whose clients left before the first token held all 8 slots forever."""
    app = serve(ScriptedLLM(answer="Late but fine [1].", delay_s=1.5), inference_max_in_flight=8,
                inference_initial_in_flight=8)  # fmt: skip
    body = {"messages": [{"role": "user", "content": "How do LoRA adapters work?"}], "stream": True}

    async def leave_early() -> None:
        async with httpx.AsyncClient(timeout=0.3) as client:
            with pytest.raises(httpx.TimeoutException):
                async with client.stream("POST", f"{app.url}{CHAT}", json=body) as response:
                    await response.aread()

    async def scenario() -> None:
        await asyncio.gather(*(leave_early() for _ in range(8)))

    asyncio.run(scenario())
    deadline = time.monotonic() + 10
    while _admission(app)["active"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _admission(app)["active"] == 0
    answer = httpx.post(f"{app.url}/rag", json={"query": "How do LoRA adapters work?"}, timeout=10)
    assert answer.status_code == 200 and answer.json()["answer"] == "Late but fine [1]."


def test_overload_gets_fast_503s_with_retry_after_and_degraded_answers_never_504(serve):
    """Regression (#14): under a burst every admitted request queued until its budget ran out (0 answers)."""
    app = serve(ScriptedLLM(answer="Answer [1].", delay_s=0.5), inference_max_in_flight=4,
                inference_initial_in_flight=4, inference_queue_wait_s=0.2, inference_request_timeout_s=20)  # fmt: skip

    async def one(client: httpx.AsyncClient) -> tuple[int, float, dict]:
        started = time.monotonic()
        response = await client.post(f"{app.url}/rag", json={"query": "How do LoRA adapters work?"})
        return response.status_code, time.monotonic() - started, dict(response.headers) | {"body": response.json()}

    async def burst() -> list[tuple[int, float, dict]]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(one(client) for _ in range(16)))

    results = asyncio.run(burst())
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 4
    refused = [(elapsed, headers) for status, elapsed, headers in results if status == 503]
    assert refused and all(elapsed < 2.0 and headers["retry-after"].isdigit() for elapsed, headers in refused)
    answered = [headers["body"] for status, _, headers in results if status == 200]
    assert any(a["degraded"] for a in answered)  # busy mode: no expansion, a shorter answer, said so
    degraded = next(a for a in answered if a["degraded"])
    assert degraded["expanded_queries"] == ["How do LoRA adapters work?"] and any(
        "busy" in n for n in degraded["notes"]
    )
    assert _admission(app)["active"] == 0


def test_admission_limit_adapts_to_measured_latency():
    from llm_engineering.infrastructure.api.admission import AdmissionController

    async def scenario() -> AdmissionController:
        admission = AdmissionController(name="t", max_limit=8, target_s=10.0, initial_limit=2, queue_wait_s=0.01)
        assert await admission.acquire() is False  # alone in the pool: not busy
        await admission.release(1.0, ok=True)
        assert await admission.acquire() is False and await admission.acquire() is True  # joins a busy pool (1 of 2)
        await admission.release(1.0, ok=True)
        await admission.release(1.0, ok=True)
        for _ in range(2):  # fast answers while full: the limit grows
            assert await admission.acquire() is not None and await admission.acquire() is not None
            await admission.release(1.0, ok=True)
            await admission.release(1.0, ok=True)
        grown = admission.current_limit
        assert grown > 2
        await admission.acquire()
        await admission.release(30.0, ok=True)  # slower than the target: the limit shrinks
        assert admission.current_limit < grown
        for _ in range(admission.current_limit):
            assert await admission.acquire() is not None
        assert await admission.acquire() is None  # full, and the queue wait runs out: refuse
        assert 1 <= admission.retry_after_s() <= 30
        return admission

    admission = asyncio.run(scenario())
    assert admission.stats.rejected == 1


class _SlowCounter(WordCounter):
    """A tokenizer that costs real CPU time per call, as the real one does on a 1 MB history."""

    def count(self, text: str) -> int:
        deadline = time.perf_counter() + 0.002
        while time.perf_counter() < deadline:
            pass
        return super().count(text)


def test_a_huge_history_does_not_freeze_the_service(serve):
    """Regression (#14): a 982 KB history stalled /health for 45 s (re-tokenized inside the event loop)."""
    app = serve(ScriptedLLM(answer="Fine [1]."), counter=_SlowCounter())
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "word " * 900} for i in range(199)
    ]
    body = {"messages": [*history, {"role": "user", "content": "How do LoRA adapters work?"}]}

    async def scenario() -> tuple[int, float]:
        async with httpx.AsyncClient(timeout=60) as client:
            chat = asyncio.create_task(client.post(f"{app.url}{CHAT}", json=body))
            await asyncio.sleep(0.05)
            worst = 0.0
            while not chat.done():
                started = time.monotonic()
                assert (await client.get(f"{app.url}/health")).status_code == 200
                worst = max(worst, time.monotonic() - started)
                await asyncio.sleep(0.02)
            return (await chat).status_code, worst

    status, worst_health_s = asyncio.run(scenario())
    assert status == 200 and worst_health_s < 0.5


def test_a_question_over_the_token_limit_is_422_not_502(serve):
    """Regression (#14): 4,000 CJK/emoji characters (inside the character limit) overflowed the 2,048-token window."""
    app = serve(ScriptedLLM(), rag_config={"max_query_tokens": 64})
    response = httpx.post(f"{app.url}/rag", json={"query": " ".join(["漢字🙂"] * 100)}, timeout=10)
    assert response.status_code == 422 and "INFERENCE_MAX_QUERY_TOKENS" in response.json()["detail"]
