"""Query expansion: ask the LLM for n rephrasings of the question (structured output), keep the sane ones.

The original question always comes first and survives any failure: a small model returns junk now and then
(empty strings, the question echoed, a sentence cut off, an unrelated essay), and an unreachable LLM must not
stop retrieval. Junk is filtered, never searched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loguru import logger

from llm_engineering.application.ports import LLM
from llm_engineering.domain.errors import LLMTwinError
from llm_engineering.domain.prompts import query_expansion_messages, query_expansion_schema

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass
class ExpansionResult:
    queries: list[str]  # original first, then accepted variants
    rejected: list[str] = field(default_factory=list)
    fallback_reason: str | None = None  # why only the original was kept, if so
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _words(text: str) -> set[str]:
    return {w.casefold() for w in _WORD.findall(text)}


def accept_variant(variant: object, original: str, seen: list[str], max_chars: int) -> str | None:
    """The cleaned variant, or None when it is junk: not text, empty, a duplicate, too long, or off-topic."""
    if not isinstance(variant, str):
        return None
    text = " ".join(variant.split()).strip(" \"'")
    if len(text) < 3 or len(text) > max_chars:
        return None
    if text.casefold() in {s.casefold() for s in seen}:
        return None
    if any(marker in text for marker in ("{", "}", "<|", "|>")):  # JSON or chat-template debris
        return None
    original_words = _words(original)
    # A rephrasing of the same question shares at least one content word with it (short queries excepted).
    content = {w for w in original_words if len(w) > 3}
    if content and not content & _words(text):
        return None
    return text


class QueryExpander:
    def __init__(
        self, llm: LLM, max_chars: int = 300, max_tokens: int | None = None, timeout_s: float | None = None
    ) -> None:
        self.llm = llm
        self.max_chars = max_chars
        self.max_tokens = max_tokens  # None: sized by n (a rephrasing rarely needs more than ~40 tokens)
        self.timeout_s = timeout_s

    async def expand(self, question: str, n: int, timeout_s: float | None = None) -> ExpansionResult:
        question = question.strip()
        if n <= 0:
            return ExpansionResult(queries=[question])
        try:
            data, raw = await self.llm.chat_json(
                query_expansion_messages(question, n),
                query_expansion_schema(n, self.max_chars),
                max_tokens=self.max_tokens or 24 + 48 * n,
                temperature=0.0,
                timeout_s=_shorter(self.timeout_s, timeout_s),
            )
        except LLMTwinError as exc:
            logger.warning(f"Query expansion skipped (LLM failed): {exc}")
            return ExpansionResult(queries=[question], fallback_reason=f"llm error: {type(exc).__name__}")
        result = ExpansionResult(
            queries=[question], prompt_tokens=raw.prompt_tokens, completion_tokens=raw.completion_tokens
        )
        variants = data.get("queries") if isinstance(data, dict) else None
        if not isinstance(variants, list):
            result.fallback_reason = "invalid JSON from the LLM"
            return result
        for variant in variants:
            accepted = accept_variant(variant, question, result.queries, self.max_chars)
            if accepted is None:
                result.rejected.append(str(variant)[:200])
            elif len(result.queries) <= n:
                result.queries.append(accepted)
        if len(result.queries) == 1:
            result.fallback_reason = "every variant was rejected"
        return result


def _shorter(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)
