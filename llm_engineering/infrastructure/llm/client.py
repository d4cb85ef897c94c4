"""The one client for everything that calls an LLM: query expansion, self-query, answers, dataset generation,
judges. It speaks the OpenAI-compatible HTTP API, so the local vLLM server and any hosted endpoint share one
code path (base URL, model id and API key come from settings).

Async (`openai.AsyncOpenAI`), with a per-request timeout, bounded retries with backoff on connection errors,
408/429/5xx (done by the SDK), structured outputs (`response_format` json_schema) and streaming. Errors are
translated into two project errors the API layer maps to HTTP: LLMUnavailableError (503) and LLMTimeoutError
(504); both name LLM_BASE_URL so the fix is obvious.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Unpack

from loguru import logger

from llm_engineering.domain.errors import LLMRequestError, LLMTimeoutError, LLMTwinError, LLMUnavailableError
from llm_engineering.domain.llm import ChatResult, GenerationOptions, JSONResult, JSONSchema, Messages, StreamDelta
from llm_engineering.settings import Settings

if TYPE_CHECKING:
    from openai import AsyncOpenAI

Message = dict[str, Any]


class LLMClient:
    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        self.base_url = base_url or settings.llm_base_url
        self.model = model or settings.llm_model_id
        self._api_key = api_key or settings.llm_api_key.get_secret_value() or "EMPTY"
        self.timeout_s = timeout_s if timeout_s is not None else settings.llm_timeout_s
        self.max_retries = max_retries if max_retries is not None else settings.llm_max_retries
        self._client: AsyncOpenAI | None = None  # created on first use: constructing never connects

    @property
    def client(self) -> AsyncOpenAI:
        if self._client is None:
            import httpx
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key,
                timeout=httpx.Timeout(self.timeout_s, connect=min(5.0, self.timeout_s)),
                max_retries=self.max_retries,
                # Many concurrent requests share one pool; vLLM batches them (continuous batching).
                http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=64, max_keepalive_connections=32)),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # --- errors -----------------------------------------------------------------------------------------------
    def _translate(self, exc: Exception) -> LLMTwinError:
        import openai

        where = f"the LLM at LLM_BASE_URL={self.base_url} (model {self.model!r})"
        if isinstance(exc, openai.APITimeoutError):
            return LLMTimeoutError(f"{where} did not answer within {self.timeout_s:.0f}s")
        if isinstance(exc, openai.APIConnectionError):
            return LLMUnavailableError(f"cannot reach {where}: start it with `poe run-llm-server` ({exc})")
        if isinstance(exc, openai.APIStatusError):
            message = _error_message(exc)
            if exc.status_code in (408, 429) or exc.status_code >= 500:
                return LLMUnavailableError(f"{where} answered HTTP {exc.status_code}: {message}")
            if exc.status_code in (401, 403):
                return LLMUnavailableError(f"{where} refused the API key (HTTP {exc.status_code}): set LLM_API_KEY")
            if exc.status_code == 404:
                return LLMUnavailableError(f"{where} does not serve this model (HTTP 404): {message}")
            return LLMRequestError(f"{where} rejected the request (HTTP {exc.status_code}): {message}")
        return LLMUnavailableError(f"{where} failed: {exc!r}")

    # --- calls --------------------------------------------------------------------------------------------------
    async def list_models(self) -> list[str]:
        import openai

        try:
            page = await self.client.models.list()
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        return [model.id for model in page.data]

    async def ready(self, timeout_s: float = 3.0) -> tuple[bool, str]:
        """(True, '') when the endpoint answers and serves the configured model, else (False, why)."""
        import openai

        try:
            page = await self.client.with_options(timeout=timeout_s, max_retries=0).models.list()
        except openai.OpenAIError as exc:
            return False, str(self._translate(exc))
        ids = [model.id for model in page.data]
        if self.model not in ids:
            return False, f"LLM at {self.base_url} serves {ids}, not the configured model {self.model!r}"
        return True, ""

    def _completion_args(self, options: GenerationOptions) -> tuple[AsyncOpenAI, dict[str, Any]]:
        """The SDK client for this call (its own timeout when asked) and the create() arguments."""
        stop = options.get("stop")
        extra_body = dict(options.get("extra_body") or {})
        if options.get("repetition_penalty") not in (None, 1.0):
            # vLLM's OpenAI server (and most OpenAI-compatible engines) take it as an extra sampling parameter.
            extra_body.setdefault("repetition_penalty", options["repetition_penalty"])
        if options.get("bad_words"):
            extra_body.setdefault("bad_words", list(options["bad_words"]))  # vLLM; llama-server ignores it
        args = {
            "model": self.model,
            "max_tokens": options.get("max_tokens", 256),
            "temperature": options.get("temperature", 0.0),
            "extra_body": extra_body or None,
            **_optional(
                top_p=options.get("top_p"),
                stop=list(stop) if stop else None,
                response_format=options.get("response_format"),
                frequency_penalty=options.get("frequency_penalty") or None,
                presence_penalty=options.get("presence_penalty") or None,
            ),
        }
        timeout_s = options.get("timeout_s")
        return (self.client if timeout_s is None else self.client.with_options(timeout=timeout_s)), args

    async def chat(self, messages: Messages, **options: Unpack[GenerationOptions]) -> ChatResult:
        import openai

        started = time.perf_counter()
        client, args = self._completion_args(options)
        try:
            response = await client.chat.completions.create(messages=list(messages), **args)
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        choice = response.choices[0]
        usage = response.usage
        return ChatResult(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
            latency_s=time.perf_counter() - started,
            model=response.model,
        )

    async def chat_json(
        self, messages: Messages, schema: JSONSchema, **options: Unpack[GenerationOptions]
    ) -> JSONResult:
        """A structured output (json_schema response format, named by the schema's title)."""
        name = str(schema.get("title") or "output")
        options["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
        result = await self.chat(messages, **options)
        try:
            return json.loads(result.text), result
        except ValueError:
            # A small model cut off by max_tokens leaves truncated JSON: the caller falls back, we just log it.
            logger.debug(f"LLM returned invalid JSON for {name!r}: {result.text[:200]!r}")
            return None, result

    async def stream_chat(self, messages: Messages, **options: Unpack[GenerationOptions]) -> AsyncIterator[StreamDelta]:
        """Yield text pieces as the model produces them; the last StreamDelta carries usage and finish reason."""
        import openai

        client, args = self._completion_args(options)
        try:
            stream = await client.chat.completions.create(
                messages=list(messages), stream=True, stream_options={"include_usage": True}, **args
            )
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        finish_reason: str | None = None
        try:
            async for chunk in stream:
                if chunk.choices:
                    choice = chunk.choices[0]
                    finish_reason = choice.finish_reason or finish_reason
                    if choice.delta and choice.delta.content:
                        yield StreamDelta(text=choice.delta.content)
                if chunk.usage is not None:
                    yield StreamDelta(
                        finish_reason=finish_reason,
                        prompt_tokens=chunk.usage.prompt_tokens,
                        completion_tokens=chunk.usage.completion_tokens,
                    )
        except openai.OpenAIError as exc:
            raise self._translate(exc) from exc
        finally:
            # The consumer may stop early (client went away): close the upstream request so vLLM stops too.
            await stream.close()


def _optional(**kwargs: Any) -> dict[str, Any]:
    return {key: value for key, value in kwargs.items() if value is not None}


def _error_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:300]
    return str(exc)[:300]
