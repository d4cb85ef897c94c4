"""Request and response bodies of the RAG service (REST and OpenAI-compatible)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from llm_engineering.application.rag.rag_service import Source
from llm_engineering.domain.redaction import safe_link

RAG_MODEL_ID = "llm-twin"  # what /v1/models lists; any `model` in a request gets the RAG twin
# A question: at least one non-blank character (the server also strips it and checks its length and tokens).
QUESTION_PATTERN = r"\S"


def _find_lone_surrogate(value: Any, path: str = "body") -> str | None:
    """The path of the first string holding a lone UTF-16 surrogate (valid JSON, not valid Unicode text)."""
    if isinstance(value, str):
        return path if any("\ud800" <= ch <= "\udfff" for ch in value) else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _find_lone_surrogate(key, f"{path}.{key}") if isinstance(key, str) else None
        found = found or _find_lone_surrogate(item, f"{path}.{key}")
        if found:
            return found
    return None


class RequestModel(BaseModel):
    """Request bodies: invalid Unicode (a lone surrogate, which JSON can encode) is a 422, never a 500."""

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        where = _find_lone_surrogate(data)
        if where:
            raise ValueError(f"{where} contains invalid Unicode (a lone surrogate)")
        return data


class RAGRequest(RequestModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, pattern=QUESTION_PATTERN, description="The question (1..INFERENCE_MAX_QUERY_CHARS characters)."
    )
    k: int | None = Field(default=None, ge=1, le=20, description="Passages in the context (default RAG_K).")
    author: str | None = Field(default=None, max_length=200, description="Restrict to this warehouse author.")
    max_tokens: int | None = Field(default=None, ge=1, le=4096)


class RAGResponse(BaseModel):
    query: str
    answer: str
    sources: list[Source]
    author: str | None
    author_method: str
    expanded_queries: list[str]
    timings_ms: dict[str, float]
    tokens: dict[str, Any]
    finish_reason: str | None
    model: str
    degraded: bool
    notes: list[str]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_call_id ... are accepted and ignored

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(RequestModel):
    # Unknown OpenAI parameters (presence_penalty, seed, ...) are accepted and ignored, as the SDK may send them.
    model_config = ConfigDict(extra="allow")

    model: str = RAG_MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    n: int = Field(default=1, ge=1, le=1, description="Only one choice is generated.")
    # Extensions (ignored by other servers, harmless for the SDK via extra_body):
    k: int | None = Field(default=None, ge=1, le=20)
    author: str | None = Field(default=None, max_length=200)
    sources_footer: bool = Field(default=True, description="Append 'Sources: [1] title — link' to the answer.")


# --- POST /search --------------------------------------------------------------------------------------------------
class SearchRequest(RequestModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1,
        pattern=QUESTION_PATTERN,
        description="What to search for (1..INFERENCE_MAX_QUERY_CHARS characters).",
    )
    k: int | None = Field(default=None, ge=1, le=50, description="How many chunks (default RAG_K).")
    author: str | None = Field(default=None, max_length=200, description="Restrict to this warehouse author.")
    mode: Literal["dense", "sparse", "hybrid", "rerank"] | None = Field(
        default=None, description="Retrieval mode (default: hybrid, or rerank when a reranker is configured)."
    )


class SearchHit(BaseModel):
    rank: int
    score: float
    link: Annotated[str, AfterValidator(safe_link)] = Field(
        description="The document's http(s) link; empty for any other scheme (javascript:, data:, file:)."
    )
    title: str
    author: str
    text: str
    document_id: str
    chunk_id: str


class SearchResponse(BaseModel):
    query: str
    mode: str
    author: str | None = Field(description="The author filter applied (requested, or found in the query).")
    author_source: str = Field(description="request | rule | none")
    hits: list[SearchHit]
    timings_ms: dict[str, float]
    notes: list[str]


# --- OpenAI-compatible responses ---------------------------------------------------------------------------------
class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "llm-twin"
    root: str | None = None  # the model version behind the twin now (as vLLM's model cards name their checkpoint)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt: int, completion: int) -> Usage:
        return cls(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str


class RAGExtras(BaseModel):
    """What the twin adds to an OpenAI payload: the author filter, expansions, timings, tokens, notes."""

    author: str | None
    author_method: str
    expanded_queries: list[str]
    timings_ms: dict[str, float]
    tokens: dict[str, Any]
    notes: list[str]
    model: str = Field(default="", description="The served model (and registry version) that answered.")
    degraded: bool = Field(default=False, description="Answered in busy mode (no expansion, shorter answer).")


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = RAG_MODEL_ID
    choices: list[Choice]
    usage: Usage
    sources: list[Source]
    rag: RAGExtras


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str = RAG_MODEL_ID
    choices: list[ChunkChoice]
    usage: Usage | None = None
    sources: list[Source] | None = None
    rag: RAGExtras | None = None
