"""Self-query with the LLM: which known author does the question name? Validated against the warehouse.

The LLM answers with a json_schema whose enum holds only the warehouse's authors (or null), so it cannot invent
a name. A small model still picks a wrong author now and then, which would silently filter out every right
passage, so an LLM answer is only trusted when a part of that author's name appears in the question (e.g.
"what does Marchetti say" → "Elena Marchetti"). The rule-based match (application/rag/self_query.py) runs
first: when the question holds a known author's full name the LLM is not asked at all. Looking authors up
never creates a user.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from loguru import logger

from llm_engineering.application.ports import LLM, AuthorDirectory
from llm_engineering.domain.errors import LLMTwinError
from llm_engineering.domain.prompts import self_query_messages, self_query_schema

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
MAX_AUTHORS_IN_PROMPT = 50  # beyond this the prompt grows too long for a small model: rule-based only


@dataclass
class SelfQueryResult:
    author: str | None
    method: str  # "llm" | "rule" | "none"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    note: str | None = None


def name_mentioned(author: str, question: str) -> bool:
    """True when a name part of `author` (≥3 letters) occurs as a word in the question."""
    words = {w.casefold() for w in _WORD.findall(question)}
    return any(len(part) >= 3 and part.casefold() in words for part in author.split())


class LLMSelfQuery:
    def __init__(
        self, rule_based: AuthorDirectory, llm: LLM | None = None, max_tokens: int = 40, timeout_s: float | None = None
    ) -> None:
        self.rule_based = rule_based
        self.llm = llm  # None: rule-based only
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s

    async def known_authors(self) -> list[str]:
        return await asyncio.to_thread(self.rule_based.known_authors)  # a warehouse query (blocking pymongo)

    async def resolve_author(self, author: str) -> str | None:
        """The warehouse spelling of an explicitly requested author, or None if no such user exists."""
        return await asyncio.to_thread(self.rule_based.canonical, author)

    async def extract(self, question: str, timeout_s: float | None = None) -> SelfQueryResult:
        authors = await self.known_authors()
        if not authors:
            return SelfQueryResult(author=None, method="none", note="the warehouse has no authors")
        rule = self.rule_based.extract_author(question)
        if rule is not None:
            return SelfQueryResult(author=rule, method="rule")  # a full name in the question: no LLM call needed
        if self.llm is None or len(authors) > MAX_AUTHORS_IN_PROMPT:
            return SelfQueryResult(author=None, method="none")
        try:
            data, raw = await self.llm.chat_json(
                self_query_messages(question, authors),
                self_query_schema(authors),
                max_tokens=self.max_tokens,
                temperature=0.0,
                timeout_s=self.timeout_s if timeout_s is None else min(timeout_s, self.timeout_s or timeout_s),
            )
        except LLMTwinError as exc:
            logger.warning(f"LLM self-query failed, using the rule-based match: {exc}")
            return SelfQueryResult(author=None, method="none", note=f"llm error: {exc}")
        tokens = {"prompt_tokens": raw.prompt_tokens, "completion_tokens": raw.completion_tokens}
        candidate = data.get("author") if isinstance(data, dict) else None
        if isinstance(candidate, str) and candidate in authors and name_mentioned(candidate, question):
            return SelfQueryResult(author=candidate, method="llm", **tokens)
        note = None
        if isinstance(candidate, str):
            note = f"llm answer {candidate!r} rejected (not known or not named in the question)"
        return SelfQueryResult(author=None, method="none", note=note, **tokens)
