"""What an LLM call returns, independent of the client that made it (pure data)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

Message = dict[str, Any]
Messages = Sequence[Message]
JSONSchema = dict[str, Any]  # its "title" names the structured output
JSONResult = tuple[Any | None, "ChatResult"]  # (parsed JSON, or None when unparsable; the raw result)


class GenerationOptions(TypedDict, total=False):
    """Sampling and transport options of one LLM call (every key optional; the client has defaults)."""

    max_tokens: int  # default 256
    temperature: float  # default 0.0
    top_p: float | None
    stop: Sequence[str] | None
    extra_body: dict[str, Any] | None  # server-specific parameters (e.g. vLLM's guided decoding)
    timeout_s: float | None  # this call only; default: the client's timeout
    response_format: dict[str, Any] | None  # e.g. {"type": "json_schema", ...}: see `chat_json`
    # Anti-repetition decoding (domain/generation.py); each client sends what its engine accepts.
    repetition_penalty: float | None  # vLLM: in extra_body; transformers: generate()
    frequency_penalty: float | None  # OpenAI API parameter
    presence_penalty: float | None  # OpenAI API parameter
    no_repeat_ngram_size: int | None  # transformers generate() only (vLLM has none)
    # Texts the answer may not complete (vLLM's `bad_words`: the last token of each is banned where the tokens
    # before it were just generated); engines without it ignore the key.
    bad_words: Sequence[str] | None


@dataclass
class ChatResult:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    latency_s: float = 0.0
    model: str = ""


@dataclass
class StreamDelta:
    """One streamed piece: text (may be empty) and, on the last one, usage and finish reason."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
