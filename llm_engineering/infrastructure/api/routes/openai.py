"""The OpenAI-compatible API: GET /v1/models and POST /v1/chat/completions (streaming with server-sent events).

Any OpenAI client works (`base_url=".../v1"`); every `model` gets the RAG twin. Retrieval runs before a streamed
response starts, so its failures still get a real status code; later failures are reported inside the stream.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from loguru import logger

from llm_engineering.application.rag.rag_service import RAGAnswer, RAGEvent, Source
from llm_engineering.infrastructure.api.deps import (
    LLMSlotDep,
    RAGServiceDep,
    SettingsDep,
    require_api_key,
    validate_query,
)
from llm_engineering.infrastructure.api.errors import ERROR_RESPONSES, APIError, error_body, map_exception
from llm_engineering.infrastructure.api.schemas import (
    RAG_MODEL_ID,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    ChunkDelta,
    ModelCard,
    ModelList,
    RAGExtras,
    Usage,
)

router = APIRouter(
    prefix="/v1", tags=["openai-compatible"], dependencies=[Depends(require_api_key)], responses=ERROR_RESPONSES
)


def sources_footer(sources: list[Source]) -> str:
    if not sources:
        return ""
    # Only http(s) links are kept on a Source (safe_link); a source without one is listed by its title alone.
    lines = [f"[{s.number}] {s.title} — {s.link}" if s.link else f"[{s.number}] {s.title}" for s in sources]
    return "\n\nSources:\n" + "\n".join(lines)


def rag_extras(answer: RAGAnswer) -> RAGExtras:
    return RAGExtras(
        author=answer.author,
        author_method=answer.author_method,
        expanded_queries=answer.expanded_queries,
        timings_ms=answer.timings_ms,
        tokens=answer.tokens,
        notes=answer.notes,
        model=answer.model,
        degraded=answer.degraded,
    )


def _usage(answer: RAGAnswer) -> Usage:
    return Usage.of(answer.tokens.get("prompt", 0), answer.tokens.get("completion", 0))


def _sse(data: ChatCompletionChunk | dict[str, Any] | str) -> bytes:
    if isinstance(data, ChatCompletionChunk):
        # As OpenAI sends them: `finish_reason: null` kept, absent extras and empty delta fields left out.
        data = data.model_dump(mode="json")
        for key in ("usage", "sources", "rag"):
            if data[key] is None:
                del data[key]
        for choice in data["choices"]:
            choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n".encode()


@router.get("/models", response_model=ModelList)
async def list_models(service: RAGServiceDep) -> ModelList:
    """The RAG twin; `root` names the model version that answers now (it follows a hot switch)."""
    return ModelList(data=[ModelCard(id=RAG_MODEL_ID, root=service.config.model_label or service.llm.model)])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}, "description": "With `stream: true`: SSE chunks"}},
)
async def chat_completions(
    body: ChatCompletionRequest, service: RAGServiceDep, settings: SettingsDep, slot: LLMSlotDep
):
    last = body.messages[-1]
    if last.role != "user":
        raise APIError(422, "the last message must come from the user", "invalid_request_error")
    query = validate_query(last.text(), settings, "messages[-1].content")
    history = [{"role": m.role, "content": m.text()} for m in body.messages[:-1] if m.role in ("user", "assistant")]
    max_tokens = body.max_completion_tokens or body.max_tokens
    options = dict(
        k=body.k,
        author=body.author,
        history=history,
        max_tokens=max_tokens,
        temperature=body.temperature,
        degraded=slot.degraded,
        deadline=slot.deadline,
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    if not body.stream:
        async with asyncio.timeout(slot.remaining_s()):
            answer = await service.answer(query, **options)
        content = answer.answer + (sources_footer(answer.sources) if body.sources_footer else "")
        return ChatCompletion(
            id=completion_id,
            created=created,
            choices=[Choice(message=AssistantMessage(content=content), finish_reason=answer.finish_reason or "stop")],
            usage=_usage(answer),
            sources=answer.sources,
            rag=rag_extras(answer),
        )

    events = service.stream(query, **options)
    try:
        async with asyncio.timeout(slot.remaining_s()):
            first = await anext(events)
    except BaseException:
        await events.aclose()
        raise

    def chunk(delta: ChunkDelta, finish: str | None = None, **extra) -> bytes:
        choice = ChunkChoice(delta=delta, finish_reason=finish)
        return _sse(ChatCompletionChunk(id=completion_id, created=created, choices=[choice], **extra))

    async def stream_body(first: RAGEvent) -> AsyncIterator[bytes]:
        sources: list[Source] = first.data if first.kind == "sources" else []
        try:
            yield chunk(ChunkDelta(role="assistant", content=""), sources=sources)
            async with asyncio.timeout(max(1.0, slot.remaining_s())):
                async for event in events:
                    if event.kind == "delta":
                        yield chunk(ChunkDelta(content=event.data))
                    elif event.kind == "done":
                        answer: RAGAnswer = event.data
                        if body.sources_footer and answer.sources:
                            yield chunk(ChunkDelta(content=sources_footer(answer.sources)))
                        yield chunk(ChunkDelta(), answer.finish_reason or "stop", rag=rag_extras(answer))
                        if body.stream_options and body.stream_options.include_usage:
                            usage_chunk = ChatCompletionChunk(
                                id=completion_id, created=created, choices=[], usage=_usage(answer)
                            )
                            yield _sse(usage_chunk)
        except Exception as exc:  # the status line is gone: report the error in the stream itself
            error = map_exception(exc)
            logger.warning(f"stream failed: {error.status} {error.message}")
            yield _sse(error_body(error.message, error.kind))
        finally:
            await events.aclose()
        yield _sse("[DONE]")

    return StreamingResponse(
        stream_body(first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
