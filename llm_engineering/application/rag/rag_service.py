"""The advanced RAG service: self-query → query expansion → filtered hybrid search per query → fusion and
de-duplication → top-k context within the token budget → answer with citations [1], [2] mapped to links.

Async end to end: LLM calls are awaited (self-query and expansion run concurrently, vLLM batches them); the
blocking retriever (embedding + Qdrant) runs in a worker thread. Every stage is timed and, when Opik is
configured, traced; timings and token counts are part of every answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from loguru import logger
from pydantic import BaseModel, Field

from llm_engineering.application.ports import (
    LLM,
    PromptTokenCounter,
    RequestTrace,
    Retriever,
    StageRecord,
    Tracer,
)
from llm_engineering.application.rag.context import (
    AssembledContext,
    assemble_context,
    context_budget,
    merge_results,
)
from llm_engineering.application.rag.fusion import dedupe_by_document
from llm_engineering.application.rag.llm_self_query import LLMSelfQuery, SelfQueryResult
from llm_engineering.application.rag.query_expansion import ExpansionResult, QueryExpander
from llm_engineering.domain.chunks import RetrievalResult
from llm_engineering.domain.errors import UnknownAuthorError
from llm_engineering.domain.llm import ChatResult, GenerationOptions
from llm_engineering.domain.prompts import (
    CHATML_GENERATION_PROMPT_TOKENS,
    CHATML_TOKENS_PER_MESSAGE,
    build_rag_messages,
    cited_numbers,
    rag_answer_stop,
)

Message = dict[str, str]


class AnswerOptions(TypedDict, total=False):
    """Per-request options of `answer` and `stream` (each falls back to RAGConfig)."""

    k: int | None  # passages in the context
    author: str | None  # an explicit author filter (must exist)
    history: Sequence[Message]  # earlier turns, oldest first
    max_tokens: int | None  # answer length
    temperature: float | None


class RAGConfig(BaseModel):
    """The answer path's knobs (the composition root fills them from Settings: RAG_*, LLM_MAX_MODEL_LEN)."""

    k: int = Field(default=3, ge=1, description="Passages put into the answer's context.")
    expand_n: int = Field(default=2, ge=0, description="Query variants from query expansion (0 = off).")
    use_llm_self_query: bool = True
    max_answer_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.3, ge=0.0)
    max_model_len: int = Field(default=2048, ge=64, description="The served model's window (prompt + answer).")


class Source(BaseModel):
    number: int = Field(description="What the answer cites as [number].")
    link: str
    title: str
    author: str
    score: float = Field(description="Fused (reciprocal rank fusion) score across the expanded queries.")
    cited: bool = False
    chunk_id: str
    document_id: str


class RAGAnswer(BaseModel):
    query: str
    answer: str
    sources: list[Source]
    author: str | None = None
    author_method: str = "none"  # request | llm | rule | none
    expanded_queries: list[str] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    tokens: dict[str, Any] = Field(default_factory=dict)
    finish_reason: str | None = None
    model: str = ""
    notes: list[str] = Field(default_factory=list)


@dataclass
class RAGEvent:
    """A streamed event: kind 'sources' (data: list[Source]), 'delta' (data: str), 'done' (data: RAGAnswer)."""

    kind: str
    data: Any


@dataclass
class _Prepared:
    query: str
    messages: list[Message]
    context: AssembledContext
    sources: list[Source]
    author: SelfQueryResult
    expansion: ExpansionResult
    max_tokens: int
    notes: list[str]


class RAGService:
    def __init__(
        self,
        config: RAGConfig,
        retriever: Retriever,
        llm: LLM,
        self_query: LLMSelfQuery,
        expander: QueryExpander,
        token_counter: PromptTokenCounter,
        tracer: Tracer,
    ) -> None:
        self.config = config
        self.retriever = retriever
        self.llm = llm
        self.self_query = self_query
        self.expander = expander
        self.token_counter = token_counter
        self.tracer = tracer
        # One search at a time: qdrant-client local mode and the embedding model are not documented thread-safe.
        self._search_lock = threading.Lock()

    # --- stages ---------------------------------------------------------------------------------------------
    async def _author(self, query: str, author: str | None, trace: RequestTrace) -> SelfQueryResult:
        with trace.stage("self_query", input={"query": query, "author": author}) as stage:
            if author:
                resolved = await self.self_query.resolve_author(author)
                if resolved is None:
                    raise UnknownAuthorError(author, await self.self_query.known_authors())
                result = SelfQueryResult(author=resolved, method="request")
            elif self.config.use_llm_self_query:
                result = await self.self_query.extract(query)
            else:
                rule = await asyncio.to_thread(self.self_query.rule_based.extract_author, query)
                result = SelfQueryResult(author=rule, method="rule" if rule else "none")
            stage.output = {"author": result.author, "method": result.method, "note": result.note}
            stage.usage = _usage(result.prompt_tokens, result.completion_tokens)
            stage.model = self.llm.model if result.prompt_tokens else None
            return result

    async def _expand(self, query: str, n: int, trace: RequestTrace) -> ExpansionResult:
        with trace.stage("query_expansion", input={"query": query, "n": n}, span_type="llm") as stage:
            result = await self.expander.expand(query, n)
            stage.output = {"queries": result.queries, "rejected": result.rejected, "fallback": result.fallback_reason}
            stage.usage = _usage(result.prompt_tokens, result.completion_tokens)
            stage.model = self.llm.model
            return result

    def _search_all(self, queries: Sequence[str], k: int, author: str | None) -> list[RetrievalResult]:
        with self._search_lock:
            return [self.retriever.search(q, k=k, author=author) for q in queries]

    async def _prepare(self, query: str, options: AnswerOptions, trace: RequestTrace) -> _Prepared:
        author = options.get("author")
        history = options.get("history", ())
        max_tokens = options.get("max_tokens")
        k = options.get("k") or self.config.k
        max_tokens = max_tokens or self.config.max_answer_tokens
        notes: list[str] = []
        author_result, expansion = await asyncio.gather(
            self._author(query, author, trace), self._expand(query, self.config.expand_n, trace)
        )
        if author_result.note:
            notes.append(f"self-query: {author_result.note}")
        if expansion.fallback_reason:
            notes.append(f"query expansion: {expansion.fallback_reason}")

        with trace.stage("search", input={"queries": expansion.queries, "author": author_result.author}) as stage:
            fetch_k = max(2 * k, 5)  # fusion needs more than k candidates per query to reorder anything
            results = await asyncio.to_thread(self._search_all, expansion.queries, fetch_k, author_result.author)
            stage.output = {"hits_per_query": [len(r.hits) for r in results]}
        warnings = {r.metadata["warning"] for r in results if r.metadata.get("warning")}
        notes.extend(f"search: {warning}" for warning in sorted(warnings))  # e.g. the feature store is empty
        with trace.stage("fusion") as stage:
            # One passage per document: repeated links make citations ambiguous and waste the small context.
            merged = dedupe_by_document(merge_results(results))
            stage.output = {"candidates": len(merged), "top": [str(h.chunk.id) for h in merged[:k]]}

        with trace.stage("context") as stage:
            history = self._fit_history(query, history, max_tokens)
            fixed = self._prompt_tokens(build_rag_messages(query, [], history))
            budget = context_budget(self.config.max_model_len, max_tokens, fixed)
            if budget <= 0:
                # The question alone fills the window: answer with a shorter budget rather than fail upstream.
                max_tokens = max(16, self.config.max_model_len - fixed - 16)
                budget = 0
                notes.append("context: question too long for any context")
            context = assemble_context(merged, k, budget, self.token_counter)
            messages = build_rag_messages(query, context.passages, history)
            stage.output = {
                "passages": len(context.passages),
                "context_tokens": context.context_tokens,
                "budget_tokens": budget,
                "truncated": context.truncated,
                "counter": context.counter,
            }
        if context.truncated:
            notes.append("context: last passage truncated to fit the model's window")
        sources = [
            Source(
                number=p.number,
                link=hit.chunk.link,
                title=hit.chunk.title,
                author=hit.chunk.author_full_name,
                score=round(hit.score, 6),
                chunk_id=str(hit.chunk.id),
                document_id=str(hit.chunk.document_id),
            )
            for p, hit in zip(context.passages, context.hits, strict=True)
        ]
        return _Prepared(query, messages, context, sources, author_result, expansion, max_tokens, notes)

    def _prompt_tokens(self, messages: Sequence[Message]) -> int:
        counted = sum(self.token_counter.count(m["content"]) + CHATML_TOKENS_PER_MESSAGE for m in messages)
        return counted + CHATML_GENERATION_PROMPT_TOKENS

    def _fit_history(self, query: str, history: Sequence[Message], max_tokens: int) -> list[Message]:
        """Earlier turns, oldest dropped first, so that they take at most half of the non-answer window."""
        allowance = (self.config.max_model_len - max_tokens) // 2
        kept = list(history)
        while kept and self._prompt_tokens(build_rag_messages(query, [], kept)) > allowance:
            kept.pop(0)
        return kept

    def _answer_model(self, prepared: _Prepared, trace: RequestTrace, generation: ChatResult) -> RAGAnswer:
        text = generation.text
        cited = set(cited_numbers(text, len(prepared.sources)))
        for source in prepared.sources:
            source.cited = source.number in cited
        exp, sq = prepared.expansion, prepared.author
        tokens = {
            "prompt": generation.prompt_tokens,
            "completion": generation.completion_tokens,
            "context": prepared.context.context_tokens,
            "context_budget": prepared.context.budget_tokens,
            "expansion": {"prompt": exp.prompt_tokens, "completion": exp.completion_tokens},
            "self_query": {"prompt": sq.prompt_tokens, "completion": sq.completion_tokens},
            "counter": prepared.context.counter,
        }
        timings = dict(trace.timings_ms)
        timings["total"] = trace.total_ms()
        return RAGAnswer(
            query=prepared.query,
            answer=text,
            sources=prepared.sources,
            author=sq.author,
            author_method=sq.method,
            expanded_queries=exp.queries,
            timings_ms=timings,
            tokens=tokens,
            finish_reason=generation.finish_reason,
            model=self.llm.model,
            notes=prepared.notes,
        )

    def _generation_options(self, prepared: _Prepared, temperature: float | None) -> GenerationOptions:
        """The answer's sampling options, the same for a streamed and a complete answer."""
        return {
            "max_tokens": prepared.max_tokens,
            "temperature": self.config.temperature if temperature is None else temperature,
            "stop": rag_answer_stop(len(prepared.sources)),
        }

    def _record_generation(self, stage: StageRecord, generation: ChatResult) -> None:
        stage.output = {"answer": generation.text, "finish_reason": generation.finish_reason}
        stage.usage = _usage(generation.prompt_tokens, generation.completion_tokens)
        stage.model = self.llm.model

    @asynccontextmanager
    async def _request(self, name: str, query: str, options: AnswerOptions) -> AsyncIterator[RequestTrace]:
        """One traced request: the trace ends with the error on any failure (cancellation included)."""
        trace = self.tracer.start(name, input={"query": query, "k": options.get("k"), "author": options.get("author")})
        try:
            yield trace
        except BaseException as exc:
            trace.end(error=exc)
            raise

    def _finish(self, trace: RequestTrace, answer: RAGAnswer) -> RAGAnswer:
        trace.end(output={"answer": answer.answer, "sources": [s.link for s in answer.sources]})
        logger.info(
            "rag query={!r} author={} sources={} timings_ms={} tokens={}",
            answer.query[:80],
            answer.author,
            len(answer.sources),
            answer.timings_ms,
            {k: v for k, v in answer.tokens.items() if k in ("prompt", "completion", "context")},
        )
        return answer

    # --- public API -------------------------------------------------------------------------------------------
    async def answer(self, query: str, **options: Unpack[AnswerOptions]) -> RAGAnswer:
        async with self._request("rag", query, options) as trace:
            prepared = await self._prepare(query, options, trace)
            with trace.stage("generation", input={"messages": prepared.messages}, span_type="llm") as stage:
                generation = await self.llm.chat(
                    prepared.messages, **self._generation_options(prepared, options.get("temperature"))
                )
                self._record_generation(stage, generation)
            answer = self._answer_model(prepared, trace, generation)
        return self._finish(trace, answer)

    async def stream(self, query: str, **options: Unpack[AnswerOptions]) -> AsyncIterator[RAGEvent]:
        """Yield 'sources', then 'delta' pieces, then 'done' with the full RAGAnswer.

        'sources' is yielded only once the LLM has produced its first piece, so an unreachable or failing LLM
        raises before anything is yielded and the API can still answer with a real status code (503/504).
        """
        async with self._request("rag_stream", query, options) as trace:
            prepared = await self._prepare(query, options, trace)
            generation = ChatResult(text="")
            pieces: list[str] = []
            sources_sent = False
            with trace.stage("generation", input={"messages": prepared.messages}, span_type="llm") as stage:
                deltas = self.llm.stream_chat(
                    prepared.messages, **self._generation_options(prepared, options.get("temperature"))
                )
                try:
                    async for delta in deltas:
                        if not sources_sent:
                            sources_sent = True
                            yield RAGEvent("sources", prepared.sources)
                        if delta.text:
                            if not pieces:
                                trace.timings_ms["first_token"] = trace.total_ms()
                            pieces.append(delta.text)
                            yield RAGEvent("delta", delta.text)
                        if delta.completion_tokens is not None:
                            generation.prompt_tokens = delta.prompt_tokens or 0
                            generation.completion_tokens = delta.completion_tokens
                            generation.finish_reason = delta.finish_reason
                finally:
                    await deltas.aclose()  # the consumer may stop early: end the upstream request too
                generation.text = "".join(pieces)
                self._record_generation(stage, generation)
            if not sources_sent:
                yield RAGEvent("sources", prepared.sources)
            answer = self._answer_model(prepared, trace, generation)
        yield RAGEvent("done", self._finish(trace, answer))

    async def check_ready(self) -> dict[str, dict[str, Any]]:
        """{"warehouse"|"vector_store"|"llm": {"ok": bool, "detail": str}} — each checked independently."""

        async def warehouse() -> tuple[bool, str]:
            # Uncached on purpose (known_authors() caches for a minute): readiness must see a dead warehouse.
            users = await asyncio.to_thread(self.self_query.rule_based.known_authors, True)
            return True, f"{len(users)} authors"

        async def vector_store() -> tuple[bool, str]:
            result = await asyncio.to_thread(self._search_all, ["health check"], 1, None)
            warning = result[0].metadata.get("warning")
            return True, warning or f"search ok ({len(result[0].hits)} hit)"

        async def llm() -> tuple[bool, str]:
            return await self.llm.ready()

        async def guarded(check) -> dict[str, Any]:
            try:
                ok, detail = await asyncio.wait_for(check(), timeout=10)
            except Exception as exc:  # any failure is the answer ("not ready, because ...")
                ok, detail = False, f"{type(exc).__name__}: {exc}"[:500]
            return {"ok": ok, "detail": detail}

        names = ("warehouse", "vector_store", "llm")
        results = await asyncio.gather(*(guarded(c) for c in (warehouse, vector_store, llm)))
        return dict(zip(names, results, strict=True))

    async def aclose(self) -> None:
        await self.llm.aclose()
        self.tracer.flush()
        close = getattr(self.retriever, "close", None)
        if callable(close):
            await asyncio.to_thread(close)


def _usage(prompt: int, completion: int) -> dict[str, int] | None:
    if not prompt and not completion:
        return None
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
