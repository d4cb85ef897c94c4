"""LLM_ENGINE=llamacpp: llama.cpp's llama-server started by the project, and the same client and RAG API tests
that run against vLLM (imported from test_llm_server.py / test_rag_api.py), here against llama.cpp."""

from __future__ import annotations

import pytest

from llm_engineering.settings import Settings
from tests.integration.llm import test_llm_server as client_contract
from tests.integration.llm import test_rag_api as rag_contract

pytestmark = pytest.mark.slow


def test_llama_server_is_ready_status_and_restart_is_a_no_op(llamacpp_server: Settings) -> None:
    from llm_engineering.infrastructure.ml.inference_engine import llm_server_status

    client_contract.test_server_is_ready_and_serves_the_configured_model_id(llamacpp_server.llm_base_url)
    status = llm_server_status(llamacpp_server)
    assert status["engine"] == "llamacpp" and status["ready"] and status["managed_pid"]
    assert status["log_file"].endswith("llama-server.log")


def test_client_contract_on_llama_cpp(llamacpp_server: Settings) -> None:
    """The vLLM client test, unchanged: chat, json_schema structured output, streaming, model id."""
    client_contract.test_client_chat_json_and_stream(llamacpp_server.llm_base_url)


def test_openai_sdk_streams_from_llama_server_with_usage(llamacpp_server: Settings) -> None:
    """The official OpenAI SDK straight against llama-server: a streamed chat completion's deltas join into the
    answer, one chunk says why it finished, and with `include_usage` a last chunk (no choices) carries the usage."""
    from openai import OpenAI

    client = OpenAI(
        base_url=llamacpp_server.llm_base_url,
        api_key=llamacpp_server.llm_api_key.get_secret_value(),
        max_retries=0,
        timeout=120,
    )
    request = {
        "model": llamacpp_server.llm_model_id,
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": 16,
    }
    chunks = list(client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    answer = "".join(deltas)
    assert answer.strip() and len(deltas) >= 2  # streamed token by token, not one blob
    finished = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finished in (["stop"], ["length"])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert 0 < last.usage.completion_tokens <= 16 and last.usage.prompt_tokens > 0
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.model for c in chunks} == {llamacpp_server.llm_model_id}

    plain = list(client.chat.completions.create(**request, stream=True))
    assert plain[-1].choices and all(c.usage is None for c in plain)  # no usage chunk unless asked for


def test_llama_server_serves_with_the_models_generation_defaults(llamacpp_server: Settings) -> None:
    """llama-server's own sampling defaults (what a request that sets none gets) are the served model's generation
    defaults: the packaged base model has no manifest, so the domain defaults."""
    import httpx

    from llm_engineering.domain.generation import GenerationDefaults

    root = llamacpp_server.llm_base_url.removesuffix("/").removesuffix("/v1")
    props = httpx.get(f"{root}/props", timeout=30).json()["default_generation_settings"]["params"]
    domain = GenerationDefaults()
    assert props["temperature"] == pytest.approx(domain.temperature)
    assert props["repeat_penalty"] == pytest.approx(domain.repetition_penalty)
    assert props["frequency_penalty"] == pytest.approx(domain.frequency_penalty)
    assert props["presence_penalty"] == pytest.approx(domain.presence_penalty)


def test_missing_binary_names_the_install_script(tmp_path, prepared_model_dir) -> None:
    from llm_engineering.domain.errors import ConfigurationError
    from llm_engineering.infrastructure.ml.inference_engine import llm_server_status, start_llm_server
    from tests.integration.llm.fixtures_llamacpp import llamacpp_settings

    settings = llamacpp_settings(
        tmp_path, prepared_model_dir, llama_cpp_dir=tmp_path / "no-llama-cpp", llm_gguf_file=tmp_path / "none.gguf"
    )
    with pytest.raises(ConfigurationError, match="LLM_GGUF_FILE"):
        start_llm_server(settings)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    settings = settings.model_copy(update={"llm_gguf_file": gguf})
    with pytest.raises(ConfigurationError, match="install_llama_cpp.sh"):
        start_llm_server(settings)
    assert "install_llama_cpp.sh" in llm_server_status(settings)["problem"]


# The RAG API tests of test_rag_api.py, served through llama.cpp (this module's `rag_app`).
@pytest.fixture(scope="module")
def rag_app(llamacpp_rag_settings: Settings, serve_rag):
    return serve_rag(llamacpp_rag_settings)


test_rag_answers_with_sources_on_llama_cpp = rag_contract.test_rag_returns_an_answer_with_sources_that_exist_in_qdrant
test_rag_author_filter_on_llama_cpp = rag_contract.test_rag_author_filter_and_self_query
test_openai_sdk_on_llama_cpp = rag_contract.test_openai_sdk_unchanged_against_our_endpoint
test_raw_sse_format_on_llama_cpp = rag_contract.test_raw_sse_format
test_ready_on_llama_cpp = rag_contract.test_ready_reports_each_dependency
