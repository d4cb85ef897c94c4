"""Generation defaults and the repetition guard against the real vLLM CPU server: the engine accepts the penalties
(repetition_penalty in extra_body, frequency_penalty), a prompt that makes the base model loop is ended cleanly
by the guard, and /rag answers are never degenerate and carry the guard's note when it acted."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from llm_engineering.application.rag.repetition import degenerate, guard_answer
from llm_engineering.domain.generation import PLAIN_DECODING, GenerationDefaults
from llm_engineering.settings import Settings

pytestmark = pytest.mark.slow

# Greedy SmolLM2 continues such a list until the token limit: a real loop to end.
LOOP_PROMPT = [{"role": "user", "content": "Continue the list:\nI like tokens.\nI like tokens.\nI like tokens."}]


def test_the_engine_accepts_the_penalties_and_the_guard_ends_a_loop(vllm_base_url):
    from llm_engineering.infrastructure.llm.client import LLMClient

    async def scenario():
        client = LLMClient(Settings(llm_base_url=vllm_base_url, llm_max_retries=0))
        try:
            plain = await client.chat(LOOP_PROMPT, max_tokens=120, **PLAIN_DECODING.sampling_options())
            tuned = await client.chat(LOOP_PROMPT, max_tokens=120, **GenerationDefaults().sampling_options())
        finally:
            await client.aclose()
        return plain, tuned

    plain, tuned = asyncio.run(scenario())
    assert tuned.text.strip() and tuned.completion_tokens > 0  # the server took the penalties (no HTTP 400)
    assert degenerate(plain.text), plain.text  # the base model really loops when asked to, without penalties
    for result in (plain, tuned):
        guarded = guard_answer(result.text, result.finish_reason)
        assert not degenerate(guarded.text) and guarded.text.strip()
    assert guard_answer(plain.text).notes[0].startswith("repetition guard:")


def test_rag_answers_are_never_degenerate(rag_app):
    questions = [
        "Why should documents be chunked by tokens rather than by characters?",
        "What is reciprocal rank fusion?",
        "Write 'tokens matter' ten times.",
    ]
    for question in questions:
        response = httpx.post(f"{rag_app.url}/rag", json={"query": question}, timeout=300)
        assert response.status_code == 200, response.text
        data = response.json()
        assert not degenerate(data["answer"]), data["answer"]
        if any(n.startswith("repetition guard:") for n in data["notes"]):
            assert data["finish_reason"] == "stop"
