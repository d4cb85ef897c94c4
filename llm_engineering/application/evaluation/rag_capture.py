"""Answers from the real RAG service with the exact prompt each model saw (a capturing tracer), and the
passages read back from that prompt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

from loguru import logger

from llm_engineering.application.evaluation.qa_set import QAReference
from llm_engineering.application.evaluation.results import GeneratedAnswer


class _Stage:
    def __init__(self) -> None:
        self.output: dict[str, Any] | None = None
        self.usage: dict[str, int] | None = None
        self.model: str | None = None


class _Trace:
    def __init__(self, tracer: CapturingTracer, query: str) -> None:
        self.tracer = tracer
        self.query = query
        self.timings_ms: dict[str, float] = {}
        self._started = time.perf_counter()

    @contextmanager
    def stage(self, name: str, input: dict[str, Any] | None = None, span_type: str = "general"):
        record = _Stage()
        started = time.perf_counter()
        if name == "generation" and input and "messages" in input:
            self.tracer.prompts[self.query] = [dict(m) for m in input["messages"]]
        try:
            yield record
        finally:
            self.timings_ms[name] = round((time.perf_counter() - started) * 1000, 3)

    def total_ms(self) -> float:
        return round((time.perf_counter() - self._started) * 1000, 3)

    def end(self, output: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        pass


class CapturingTracer:
    """A `Tracer` that keeps the generation prompt of each query (what the model really saw)."""

    def __init__(self) -> None:
        self.prompts: dict[str, list[dict[str, Any]]] = {}

    def start(self, name: str, input: dict[str, Any], metadata: dict[str, Any] | None = None) -> _Trace:
        return _Trace(self, str(input.get("query", "")))

    def flush(self) -> None:
        pass


def passages_from_prompt(messages: Sequence[dict[str, Any]], sources: Sequence[Any]) -> list[str]:
    """The numbered passage texts of a RAG prompt, in source order, using the known source headers
    (`[n] Title (Author)` — see domain/prompts.format_passage)."""
    if not messages:
        return []
    text = str(messages[-1].get("content", ""))
    body = text.split("Context:\n", 1)[-1].rsplit("\n\nQuestion: ", 1)[0]
    headers = [f"[{s.number}] {s.title} ({s.author})\n" for s in sources]
    positions = [body.find(h) for h in headers]
    passages = []
    for i, (header, start) in enumerate(zip(headers, positions, strict=True)):
        if start < 0:
            passages.append("")
            continue
        begin = start + len(header)
        following = [p for p in positions[i + 1 :] if p > start]
        end = min(following) if following else len(body)
        passages.append(body[begin:end].strip())
    return passages


async def answer_questions(
    rag: Any, tracer: CapturingTracer, items: Sequence[QAReference], k: int, max_tokens: int, concurrency: int
) -> list[GeneratedAnswer]:
    """Each question through the RAG service (greedy), with the passages it saw."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(index: int, item: QAReference) -> GeneratedAnswer:
        base = GeneratedAnswer(
            id=f"qa-{index + 1}", kind="rag", question=item.question, reference=item.answer, reference_links=[item.link]
        )
        async with semaphore:
            try:
                # max_tokens None: the length the model's generation defaults give this question (capped by the
                # service's max_answer_tokens), as /rag does.
                result = await rag.answer(item.question, k=k, author=item.author, max_tokens=None, temperature=0.0)
            except Exception as exc:  # one failed question is a row with its error, not a failed run
                logger.warning(f"RAG answer failed for {item.question!r}: {exc}")
                return base.model_copy(update={"error": f"{type(exc).__name__}: {exc}"[:300]})
        prompt = tracer.prompts.get(item.question, [])
        generation_s = result.timings_ms.get("generation", 0.0) / 1000
        return base.model_copy(
            update={
                "prompt": [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt],
                "answer": result.answer,
                "contexts": passages_from_prompt(prompt, result.sources),
                "context_links": [s.link for s in result.sources],
                "latency_s": round(generation_s, 4),
                "completion_tokens": int(result.tokens.get("completion") or 0),
                "finish_reason": result.finish_reason,
                "notes": list(result.notes),
            }
        )

    return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(items))))
