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

LOOP_PROMPT = [{"role": "user", "content": "Continue the list:\nI like tokens.\nI like tokens.\nI like tokens."}]
# A raw completion of a repeated line (no chat template): greedy decoding continues the pattern to the token
# limit on any CPU — a real loop for the guard to end. (The chat reply to LOOP_PROMPT loops on some CPUs only:
# bf16 kernels differ between AVX-512 and AMX machines, and so does the greedy path.)
LOOP_COMPLETION = "I like tokens.\n" * 8


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
    loop = _plain_completion(vllm_base_url, LOOP_COMPLETION)
    assert degenerate(loop["text"]), loop  # the base model really loops, without penalties
    for text, finish_reason in ((loop["text"], loop["finish_reason"]), (plain.text, plain.finish_reason),
                                (tuned.text, tuned.finish_reason)):  # fmt: skip
        guarded = guard_answer(text, finish_reason)
        assert not degenerate(guarded.text) and guarded.text.strip()
    assert guard_answer(loop["text"]).notes[0].startswith("repetition guard:")


HEADER = "[1] Chunk by Tokens (Ada Lovelace)"
HEADER_LINES = f"{HEADER}\n" * 4


def test_the_engine_never_completes_a_banned_passage_header(vllm_base_url, prepared_model_dir):
    from llm_engineering.domain.prompts import answer_bad_words
    from llm_engineering.infrastructure.llm.client import LLMClient
    from llm_engineering.infrastructure.llm.tokens import load_token_counter

    # the bad words the RAG service sends for one passage titled "Chunk by Tokens", in the served model's tokens
    counter = load_token_counter(str(prepared_model_dir))
    bad_words = answer_bad_words([counter.truncate("] Chunk by Tokens", 2)], passages=1)
    assert bad_words[0] == "] Ch"
    banned_pair = ("]", " Ch")  # the ban is on tokens: " Ch" right after "]"
    pasted = _plain_completion(vllm_base_url, HEADER_LINES, logprobs=1)
    assert HEADER in pasted["text"] and banned_pair in _token_pairs(pasted)  # greedy decoding pastes it again ...
    banned = _plain_completion(vllm_base_url, HEADER_LINES, bad_words=bad_words, logprobs=1)
    assert banned["text"].strip() and banned_pair not in _token_pairs(banned)  # ... and never with the bad words

    async def chat():  # the project's client sends them where vLLM reads them (extra_body): no HTTP 400
        client = LLMClient(Settings(llm_base_url=vllm_base_url, llm_max_retries=0))
        try:
            prompt = [{"role": "user", "content": f"Repeat these lines:\n{HEADER_LINES}"}]
            return await client.chat(prompt, max_tokens=60, bad_words=bad_words)
        finally:
            await client.aclose()

    assert asyncio.run(chat()).completion_tokens > 0


def _token_pairs(choice: dict) -> set[tuple[str, str]]:
    tokens = choice["logprobs"]["tokens"]
    return set(zip(tokens, tokens[1:], strict=False))


def _plain_completion(base_url: str, prompt: str, **extra) -> dict:
    """vLLM's raw /v1/completions, greedy, no penalties: the model's own continuation of `prompt`."""
    model = httpx.get(f"{base_url}/models", timeout=30).json()["data"][0]["id"]
    body = {"model": model, "prompt": prompt, "max_tokens": 120, "temperature": 0.0, **extra}
    response = httpx.post(f"{base_url}/completions", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]


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
