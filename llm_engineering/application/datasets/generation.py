"""The LLM calls of dataset generation, each cached and counted.

Back-translation: the extract is the answer, verbatim; the LLM writes only the n instructions it answers, as
JSON constrained by a schema (`instructions_schema`). Unusable output is retried once (at a higher temperature,
so the retry can differ) and then dropped. Rejected answers come from the base model with the twin's
no-context prompt; the optional judge scores (instruction, extract) pairs 1-5.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pydantic import BaseModel, Field

from llm_engineering.application.datasets.cache import GenerationCache, cache_key
from llm_engineering.application.datasets.filters import clean_instruction
from llm_engineering.application.ports import LLM
from llm_engineering.domain.datasets import Extract, text_hash
from llm_engineering.domain.errors import LLMRequestError, LLMTimeoutError, LLMUnavailableError
from llm_engineering.domain.generation import GenerationDefaults
from llm_engineering.domain.llm import ChatResult
from llm_engineering.domain.prompts import (
    instruction_messages,
    instructions_schema,
    judge_messages,
    judge_schema,
    preference_prompt,
    rag_answer_stop,
)

# Which settings point each role at an endpoint (for error messages; the composition root reads them).
ENDPOINT_SETTINGS = {
    "instructions": "DATASET_LLM_BASE_URL / DATASET_LLM_MODEL_ID (default: LLM_BASE_URL / LLM_MODEL_ID)",
    "rejected": "LLM_BASE_URL / LLM_MODEL_ID (the base model)",
    "judge": "JUDGE_BASE_URL / JUDGE_MODEL_ID",
}


# A busy CPU server can take seconds to list its models while it batches: do not mistake that for "down".
READY_TIMEOUT_S = 30.0


class GenerationConfig(BaseModel):
    instructions_per_extract: int = Field(default=2, ge=1, le=8)
    temperature: float = Field(default=0.0, ge=0)
    retry_temperature: float = Field(default=0.7, ge=0)
    instruction_max_tokens: int = Field(default=160, ge=16)
    rejected_max_tokens: int = Field(default=192, ge=8)
    rejected_temperature: float = Field(default=0.0, ge=0)
    rejected_decoding: GenerationDefaults = Field(
        default_factory=GenerationDefaults,
        description="how the base model decodes its rejected answers: as it is served (the model's defaults)",
    )
    context_rejected: bool = Field(
        default=True, description="also ask the base model the with-context prompt (with-context preference pairs)"
    )
    judge_max_tokens: int = Field(default=16, ge=4)


@dataclass
class CallStats:
    calls: Counter[str] = field(default_factory=Counter)
    completion_tokens: int = 0
    timeouts: int = 0

    def record(self, kind: str, result: ChatResult | None) -> None:
        self.calls[kind] += 1
        if result is not None:
            self.completion_tokens += result.completion_tokens


def parse_questions(parsed: Any, n: int) -> list[str]:
    """The usable questions of a structured answer (cleaned, exact duplicates removed, at most n)."""
    if not isinstance(parsed, dict) or not isinstance(parsed.get("questions"), list):
        return []
    questions: list[str] = []
    seen: set[str] = set()
    for item in parsed["questions"]:
        if not isinstance(item, str):
            continue
        question = clean_instruction(item)
        key = question.casefold()
        if len(question) >= 3 and key not in seen:
            seen.add(key)
            questions.append(question)
    return questions[:n]


def parse_score(parsed: Any) -> int | None:
    if isinstance(parsed, dict) and isinstance(parsed.get("score"), int) and 1 <= parsed["score"] <= 5:
        return int(parsed["score"])
    return None


class EndpointGuard:
    """Checks an endpoint once, before its first uncached call, so a dead server fails fast with the fix."""

    def __init__(self) -> None:
        self._checked: set[int] = set()
        self._lock: asyncio.Lock | None = None

    async def ensure(self, llm: LLM, role: str) -> None:
        if id(llm) in self._checked:
            return
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if id(llm) in self._checked:
                return
            ok, why = await llm.ready(timeout_s=READY_TIMEOUT_S)
            if not ok:
                raise LLMUnavailableError(unavailable_message(llm, role, why))
            self._checked.add(id(llm))


def unavailable_message(llm: LLM, role: str, why: str) -> str:
    return (
        f"dataset generation cannot use the LLM for {role} at {llm.base_url} (model {llm.model!r}): {why}. "
        f"Start the local server with `poe run-llm-server`, or point {ENDPOINT_SETTINGS.get(role, 'the settings')} "
        "at a running OpenAI-compatible endpoint."
    )


class Generators:
    """Instruction writer, rejected-answer writer and judge over one cache, with call statistics."""

    def __init__(
        self,
        llm: LLM,
        rejected_llm: LLM,
        cache: GenerationCache,
        config: GenerationConfig | None = None,
        judge: LLM | None = None,
    ) -> None:
        self.llm = llm
        self.rejected_llm = rejected_llm
        self.judge_llm = judge
        self.cache = cache
        self.config = config or GenerationConfig()
        self.stats = CallStats()
        self.guard = EndpointGuard()

    async def _call(self, llm: LLM, role: str, messages, schema: dict | None, **options) -> tuple[Any, ChatResult]:
        """(parsed JSON or text, result); a timeout or a rejected request counts as unusable output (None)."""
        await self.guard.ensure(llm, role)
        try:
            if schema is not None:
                parsed, result = await llm.chat_json(messages, schema, **options)
            else:
                result = await llm.chat(messages, **options)
                parsed = result.text
        except LLMTimeoutError as exc:
            self.stats.timeouts += 1
            self.stats.record(role, None)
            logger.warning(f"{role}: {exc}")
            return _TIMEOUT, ChatResult("")
        except LLMRequestError as exc:
            self.stats.record(role, None)
            logger.warning(f"{role}: {exc}")
            return None, ChatResult("")
        except LLMUnavailableError as exc:
            raise LLMUnavailableError(unavailable_message(llm, role, str(exc))) from exc
        self.stats.record(role, result)
        return parsed, result

    async def instructions(self, extract: Extract) -> list[str] | None:
        """The instructions this extract answers, or None when the LLM's output was unusable twice."""
        config = self.config
        n = config.instructions_per_extract
        key = cache_key(
            "instructions",
            extract.hash,
            self.llm.model,
            n=n,
            temperature=config.temperature,
            retry=config.retry_temperature,
            max_tokens=config.instruction_max_tokens,
        )
        cached = self.cache.get("instructions", key)
        if cached is not None:  # the raw output is cached: cleaning rules may change without asking again
            return parse_questions({"questions": cached.get("questions")}, n) or None
        questions: list[str] = []
        raw: Any = None
        timed_out = False
        for temperature in (config.temperature, config.retry_temperature):
            parsed, _ = await self._call(
                self.llm,
                "instructions",
                instruction_messages(extract.text, n),
                instructions_schema(n),
                temperature=temperature,
                max_tokens=config.instruction_max_tokens,
            )
            timed_out = parsed is _TIMEOUT
            questions = [] if timed_out else parse_questions(parsed, n)
            if questions:
                raw = parsed["questions"]
                break
        if not timed_out:  # a timeout says nothing about the extract: ask again next run
            self.cache.put(key, {"questions": raw})
        return questions or None

    async def rejected(self, instruction: str) -> str:
        """The base model's own answer to the instruction, with the twin's no-context prompt."""
        config = self.config
        key = cache_key(
            "rejected",
            text_hash(instruction),
            self.rejected_llm.model,
            temperature=config.rejected_temperature,
            max_tokens=config.rejected_max_tokens,
            decoding=config.rejected_decoding.model_dump(mode="json"),
        )
        cached = self.cache.get("rejected", key)
        if cached is not None:
            return str(cached.get("text") or "")
        text, _ = await self._call(
            self.rejected_llm,
            "rejected",
            preference_prompt(instruction),
            None,
            temperature=config.rejected_temperature,
            max_tokens=config.rejected_max_tokens,
            **config.rejected_decoding.sampling_options(),
        )
        if text is _TIMEOUT:
            return ""
        text = (text or "").strip()
        self.cache.put(key, {"text": text})
        return text

    async def rejected_in_context(self, messages: list[dict[str, str]], passages: int, question: str) -> str | None:
        """The base model's RAG answer to a with-context prompt, decoded as served (None: timed out)."""
        config = self.config
        decoding = config.rejected_decoding
        key = cache_key(
            "rejected_context",
            text_hash("\0".join(m["content"] for m in messages)),
            self.rejected_llm.model,
            temperature=config.rejected_temperature,
            max_tokens=config.rejected_max_tokens,
            decoding=decoding.model_dump(mode="json"),
        )
        cached = self.cache.get("rejected", key)
        if cached is not None:
            return str(cached.get("text") or "")
        stop = rag_answer_stop(passages)
        text, _ = await self._call(
            self.rejected_llm,
            "rejected",
            messages,
            None,
            temperature=config.rejected_temperature,
            max_tokens=decoding.max_tokens_for(question, cap=config.rejected_max_tokens),
            stop=stop + [s for s in decoding.stop if s not in stop],
            **decoding.sampling_options(),
        )
        if text is _TIMEOUT:
            return None
        text = (text or "").strip()
        self.cache.put(key, {"text": text})
        return text

    async def judge(self, instruction: str, answer: str) -> int | None:
        """1-5, or None without a judge or when its output was unusable twice."""
        if self.judge_llm is None:
            return None
        key = cache_key("judge", text_hash(f"{instruction}\0{answer}"), self.judge_llm.model)
        cached = self.cache.get("judge", key)
        if cached is not None:
            return cached.get("score")
        score = None
        for temperature in (0.0, self.config.retry_temperature):
            parsed, _ = await self._call(
                self.judge_llm,
                "judge",
                judge_messages(instruction, answer),
                judge_schema(),
                temperature=temperature,
                max_tokens=self.config.judge_max_tokens,
            )
            score = None if parsed is _TIMEOUT else parse_score(parsed)
            if score is not None:
                break
        self.cache.put(key, {"score": score})
        return score


_TIMEOUT = object()  # sentinel: the call timed out (not cached)
