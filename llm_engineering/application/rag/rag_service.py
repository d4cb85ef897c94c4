"""The advanced RAG service: self-query → query expansion → filtered hybrid search per query → fusion and
de-duplication → top-k context within the token budget → answer with citations [1], [2] mapped to links.

Async end to end: LLM calls are awaited (self-query and expansion run concurrently, vLLM batches them); the
blocking retriever (embedding + Qdrant) runs in a worker thread. Every stage is timed and, when Opik is
configured, traced; timings and token counts are part of every answer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict, Unpack

from loguru import logger
from pydantic import AfterValidator, BaseModel, Field

from llm_engineering.application.ports import (
    LLM,
    PromptTokenCounter,
    RequestTrace,
    Retriever,
    StageRecord,
    Tracer,
)
from llm_engineering.application.rag.attribution import Attributor
from llm_engineering.application.rag.context import (
    AssembledContext,
    assemble_context,
    context_budget,
    merge_results,
)
from llm_engineering.application.rag.fusion import dedupe_by_document
from llm_engineering.application.rag.llm_self_query import LLMSelfQuery, SelfQueryResult
from llm_engineering.application.rag.query_expansion import ExpansionResult, QueryExpander
from llm_engineering.application.rag.repetition import StreamingGuard, guard_answer
from llm_engineering.domain.chunks import RetrievalResult
from llm_engineering.domain.errors import InputTooLargeError, ServiceUnavailableError, UnknownAuthorError
from llm_engineering.domain.generation import GenerationDefaults
from llm_engineering.domain.llm import ChatResult, GenerationOptions
from llm_engineering.domain.prompts import (
    CHATML_GENERATION_PROMPT_TOKENS,
    CHATML_TOKENS_PER_MESSAGE,
    answer_bad_words,
    build_rag_messages,
    cited_numbers,
    passage_header,
    rag_answer_stop,
)
from llm_engineering.domain.redaction import safe_link

Message = dict[str, str]


class AnswerOptions(TypedDict, total=False):
    """Per-request options of `answer` and `stream` (each falls back to RAGConfig)."""

    k: int | None  # passages in the context
    author: str | None  # an explicit author filter (must exist)
    history: Sequence[Message]  # earlier turns, oldest first
    max_tokens: int | None  # answer length (default: suited to the question, see GenerationDefaults)
    temperature: float | None
    degraded: bool  # the service is busy: no expansion, no LLM self-query, a shorter answer
    deadline: float | None  # time.monotonic() by which the answer must be complete


class RAGConfig(BaseModel):
    """The answer path's knobs (the composition root fills them from Settings: RAG_*, LLM_MAX_MODEL_LEN)."""

    k: int = Field(default=3, ge=1, description="Passages put into the answer's context.")
    expand_n: int = Field(default=2, ge=0, description="Query variants from query expansion (0 = off).")
    use_llm_self_query: bool = True
    max_answer_tokens: int = Field(default=256, ge=1, description="The longest answer (a request may ask less).")
    temperature: float | None = Field(
        default=None, ge=0.0, description="Overrides the model's default temperature (None: the model's)."
    )
    generation: GenerationDefaults = Field(
        default_factory=GenerationDefaults,
        description="The served model version's decoding defaults (its manifest's `generation`).",
    )
    repetition_guard: bool = Field(default=True, description="End an answer that starts repeating itself.")
    attribute_citations: bool = Field(
        default=True,
        description="Cite [n] after an uncited sentence that quotes passage n word for word (application/rag/"
        "attribution.py); with the guard, also while streaming.",
    )
    block_passage_headers: bool = Field(
        default=True,
        description="Send the engine bad words (vLLM `bad_words`, domain `answer_bad_words`): a title after "
        "`[n]`, a number no passage has, the system prompt's opening; the model cannot paste a `[n] Title "
        "(Author)` line and writes the answer instead (the guard still removes what an engine without bad words "
        "lets through).",
    )
    max_model_len: int = Field(default=2048, ge=64, description="The served model's window (prompt + answer).")
    max_query_tokens: int = Field(default=512, ge=8, description="A question's limit in the served model's tokens.")
    busy_answer_tokens: int = Field(default=128, ge=16, description="Answer length in degraded (busy) mode.")
    helper_budget_s: float = Field(default=10.0, gt=0, description="Self-query and expansion stage budget each.")
    model_label: str | None = Field(
        default=None, description="Which model answers, as reported (e.g. llm-twin:v0003); default: the LLM's id."
    )
    generation_reserve_s: float = Field(
        default=3.0, ge=0, description="Time the answer needs at least; a request with less left is refused (503)."
    )


class Source(BaseModel):
    number: int = Field(description="What the answer cites as [number].")
    link: Annotated[str, AfterValidator(safe_link)] = Field(
        description="The document's http(s) link; empty when the stored link is anything else (javascript:, "
        "data:, file:), which never leaves the service as a link."
    )
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
    degraded: bool = Field(default=False, description="Answered in busy mode (no expansion, shorter answer).")
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
    degraded: bool = False
    deadline: float | None = None


# Generous upper bound of characters per token, to drop hopeless history before any tokenizing.
MAX_CHARS_PER_TOKEN = 8


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
    async def _author(
        self, query: str, author: str | None, use_llm: bool, budget_s: float, trace: RequestTrace
    ) -> SelfQueryResult:
        with trace.stage("self_query", input={"query": query, "author": author}) as stage:
            if author:
                resolved = await self.self_query.resolve_author(author)
                if resolved is None:
                    raise UnknownAuthorError(author, await self.self_query.known_authors())
                result = SelfQueryResult(author=resolved, method="request")
            elif use_llm:
                result = await self.self_query.extract(query, timeout_s=budget_s)
            else:
                rule = await asyncio.to_thread(self.self_query.rule_based.extract_author, query)
                result = SelfQueryResult(author=rule, method="rule" if rule else "none")
            stage.output = {"author": result.author, "method": result.method, "note": result.note}
            stage.usage = _usage(result.prompt_tokens, result.completion_tokens)
            stage.model = self.llm.model if result.prompt_tokens else None
            return result

    async def _expand(self, query: str, n: int, budget_s: float, trace: RequestTrace) -> ExpansionResult:
        with trace.stage("query_expansion", input={"query": query, "n": n}, span_type="llm") as stage:
            result = await self.expander.expand(query, n, timeout_s=budget_s)
            stage.output = {"queries": result.queries, "rejected": result.rejected, "fallback": result.fallback_reason}
            stage.usage = _usage(result.prompt_tokens, result.completion_tokens)
            stage.model = self.llm.model
            return result

    def _search_all(self, queries: Sequence[str], k: int, author: str | None) -> list[RetrievalResult]:
        with self._search_lock:
            return [self.retriever.search(q, k=k, author=author) for q in queries]

    def _remaining(self, deadline: float | None) -> float:
        return float("inf") if deadline is None else deadline - time.monotonic()

    def _check_time(self, deadline: float | None, before: str) -> None:
        if self._remaining(deadline) < self.config.generation_reserve_s:
            raise ServiceUnavailableError(f"busy: not enough time left in the request budget for {before}; retry")

    async def _prepare(self, query: str, options: AnswerOptions, trace: RequestTrace) -> _Prepared:
        author = options.get("author")
        history = options.get("history", ())
        degraded = bool(options.get("degraded"))
        deadline = options.get("deadline")
        k = options.get("k") or self.config.k
        max_tokens = options.get("max_tokens") or self.config.generation.max_tokens_for(
            query, cap=self.config.max_answer_tokens
        )
        notes: list[str] = []
        if degraded:
            max_tokens = min(max_tokens, self.config.busy_answer_tokens)
            notes.append(f"busy: query expansion and LLM self-query skipped, answer capped at {max_tokens} tokens")
        query_tokens = await asyncio.to_thread(self.token_counter.count, query)
        if query_tokens > self.config.max_query_tokens:
            raise InputTooLargeError(
                f"the question is {query_tokens} tokens of the served model; the limit is "
                f"{self.config.max_query_tokens} (INFERENCE_MAX_QUERY_TOKENS)"
            )
        self._check_time(deadline, "retrieval")
        # Each helper stage has its own budget, and never eats the time the answer needs.
        helper_budget = max(
            0.5, min(self.config.helper_budget_s, self._remaining(deadline) - self.config.generation_reserve_s)
        )
        expand_n = 0 if degraded else self.config.expand_n
        use_llm = self.config.use_llm_self_query and not degraded
        author_result, expansion = await asyncio.gather(
            self._author(query, author, use_llm, helper_budget, trace),
            self._expand(query, expand_n, helper_budget, trace),
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
            # Tokenizing is CPU work: off the event loop, so one long request never stalls the others.
            context, messages, max_tokens, budget = await asyncio.to_thread(
                self._build_prompt, query, history, merged, k, max_tokens, notes
            )
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
        self._check_time(deadline, "generation")
        return _Prepared(
            query, messages, context, sources, author_result, expansion, max_tokens, notes, degraded, deadline
        )

    def _build_prompt(
        self,
        query: str,
        history: Sequence[Message],
        merged: Sequence[Any],
        k: int,
        max_tokens: int,
        notes: list[str],
    ) -> tuple[AssembledContext, list[Message], int, int]:
        history = self._fit_history(query, history, max_tokens)
        fixed = self._prompt_tokens(build_rag_messages(query, [], history))
        budget = context_budget(self.config.max_model_len, max_tokens, fixed)
        if budget <= 0:
            # The question alone fills the window: answer with a shorter budget rather than fail upstream.
            max_tokens = max(16, self.config.max_model_len - fixed - 16)
            budget = 0
            notes.append("context: question too long for any context")
        context = assemble_context(merged, k, budget, self.token_counter)
        return context, build_rag_messages(query, context.passages, history), max_tokens, budget

    def _prompt_tokens(self, messages: Sequence[Message]) -> int:
        counted = sum(self.token_counter.count(m["content"]) + CHATML_TOKENS_PER_MESSAGE for m in messages)
        return counted + CHATML_GENERATION_PROMPT_TOKENS

    def _fit_history(self, query: str, history: Sequence[Message], max_tokens: int) -> list[Message]:
        """The newest earlier turns that fit, so that the prompt without context takes at most half of the
        non-answer window (oldest dropped first). Each turn is counted once, and turns far beyond any budget are
        dropped by length before any tokenizing (a 1 MB history costs no more than the window it can fill)."""
        allowance = (self.config.max_model_len - max_tokens) // 2
        room = allowance - self._prompt_tokens(build_rag_messages(query, [], []))
        kept: list[Message] = []
        chars = 0
        for message in reversed(history):
            chars += len(message["content"])
            if chars > allowance * MAX_CHARS_PER_TOKEN:
                break
            cost = self.token_counter.count(message["content"]) + CHATML_TOKENS_PER_MESSAGE
            if cost > room:
                break
            room -= cost
            kept.append(message)
        return kept[::-1]

    def _answer_model(self, prepared: _Prepared, trace: RequestTrace, generation: ChatResult) -> RAGAnswer:
        text = generation.text.strip()
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
            model=self.config.model_label or self.llm.model,
            degraded=prepared.degraded,
            notes=prepared.notes,
        )

    def _generation_options(self, prepared: _Prepared, temperature: float | None) -> GenerationOptions:
        """The answer's sampling options, the same for a streamed and a complete answer."""
        defaults = self.config.generation
        if temperature is None:
            temperature = defaults.temperature if self.config.temperature is None else self.config.temperature
        stop = rag_answer_stop(len(prepared.sources))
        stop += [marker for marker in defaults.stop if marker not in stop]
        options: GenerationOptions = {
            "max_tokens": prepared.max_tokens,
            "temperature": temperature,
            "stop": stop,
            **defaults.sampling_options(),
        }
        if self.config.block_passage_headers and prepared.sources:
            options["bad_words"] = self._bad_words(prepared)
        if prepared.deadline is not None:
            options["timeout_s"] = max(1.0, self._remaining(prepared.deadline))
        return options

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
            attributor = self._attributor(prepared)
            if self.config.repetition_guard:
                cite = attributor.cite if attributor else None
                guarded = guard_answer(generation.text, generation.finish_reason, self._headers(prepared), cite)
                if guarded.repetition is not None:
                    generation.finish_reason = "stop"
                generation.text = guarded.text
                prepared.notes.extend(guarded.notes)
            elif attributor is not None:
                generation.text = attributor.cite(generation.text)
            if attributor is not None:
                prepared.notes.extend(attributor.result().notes)
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
            # Sentence by sentence when guarded: a repeated sentence is never sent, the stream ends before it.
            # The guard releases whole sentences: the attributor cites each as it goes (it needs sentences).
            attributor = self._attributor(prepared) if self.config.repetition_guard else None
            guard = (
                StreamingGuard(self._headers(prepared), attributor.cite if attributor else None)
                if self.config.repetition_guard
                else None
            )
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
                            out = guard.feed(delta.text) if guard else delta.text
                            if out:
                                yield RAGEvent("delta", out)
                            if guard and guard.stopped:
                                generation.finish_reason = "stop"
                                break  # closes the upstream request below: the model stops generating too
                        if delta.completion_tokens is not None:
                            generation.prompt_tokens = delta.prompt_tokens or 0
                            generation.completion_tokens = delta.completion_tokens
                            generation.finish_reason = delta.finish_reason
                finally:
                    await deltas.aclose()  # the consumer may stop early: end the upstream request too
                generation.text = "".join(pieces)
                self._record_generation(stage, generation)
            if guard is not None:
                rest = guard.finish(generation.finish_reason)
                if rest:
                    yield RAGEvent("delta", rest)
                guarded = guard.result(generation.finish_reason)
                generation.text = guarded.text
                prepared.notes.extend(guarded.notes)
                if attributor is not None:
                    prepared.notes.extend(attributor.result().notes)
                if guarded.repetition is not None and not generation.completion_tokens:
                    generation.completion_tokens = self.token_counter.count("".join(pieces))
            if not sources_sent:
                yield RAGEvent("sources", prepared.sources)
            answer = self._answer_model(prepared, trace, generation)
        yield RAGEvent("done", self._finish(trace, answer))

    def _attributor(self, prepared: _Prepared) -> Attributor | None:
        """Cites the sentences that quote a passage word for word and cite nothing (RAG_ATTRIBUTE_CITATIONS)."""
        if not self.config.attribute_citations:
            return None
        return Attributor([passage.text for passage in prepared.context.passages])

    def _bad_words(self, prepared: _Prepared) -> list[str]:
        """The engine's bad words for this answer (domain `answer_bad_words`): the title openings are cut at the
        served model's first title token, which is what a ban must match after "[n]"."""
        openings = [self.token_counter.truncate(f"] {source.title.strip()}", 2) for source in prepared.sources]
        return answer_bad_words(openings, len(prepared.sources))

    @staticmethod
    def _headers(prepared: _Prepared) -> list[str]:
        """The passages' header lines as the prompt shows them (what a pasted header is recognised by)."""
        return [passage_header(source.number, source.title, source.author) for source in prepared.sources]

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
