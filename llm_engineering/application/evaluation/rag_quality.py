"""RAG answer quality: the QA set with references, the contexts the RAG service really used, non-LLM metrics
(always), citation validity, and Ragas metrics (non-LLM ones when Ragas imports; LLM ones through the judge).

References. A QA line needs `question` and `link` (the source document); `answer` (a reference answer) and
`evidence` (a verbatim sentence of the source that answers it) are optional and may come from a second file
joined by question (`data/sample/qa_answers.jsonl` for the sample author: reference answers written from the
author's text, evidence copied verbatim). Reference *contexts* — what Ragas' reference-based context metrics
compare retrieved chunks with — are looked up in the feature store: the chunks of the source document that
contain the evidence (searched by the evidence itself), so they are chunk-sized like the retrieved ones.

The answers come from the real `RAGService` (the same code that serves `/rag`), with a recording tracer that
keeps the exact prompt: the numbered passages the model saw are read back from it, so citation checks and
Ragas see precisely the model's context.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_engineering.application.evaluation.results import GeneratedAnswer, Skipped, finite, mean
from llm_engineering.application.evaluation.retrieval import normalize_link
from llm_engineering.application.evaluation.text_metrics import (
    citation_validity,
    context_precision_with_reference,
    context_recall_with_reference,
    id_precision,
    id_recall,
    levenshtein_similarity,
    rouge_l,
    rouge_n,
)
from llm_engineering.application.jsonl import read_jsonl_objects
from llm_engineering.application.ports import LLM, Embedder, Retriever
from llm_engineering.domain.errors import ConfigurationError

# --- QA set ------------------------------------------------------------------------------------------------------


class QAReference(BaseModel):
    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=1)
    link: str = Field(min_length=1)
    kind: str | None = None
    author: str | None = None
    answer: str | None = None
    evidence: str | None = None


def load_qa_with_references(qa_path: str | Path, references_path: str | Path | None = None) -> list[QAReference]:
    """The QA set, with `answer`/`evidence` joined from `references_path` by question (when given)."""
    qa_path = Path(qa_path)
    rows = read_jsonl_objects(qa_path, f"QA file {qa_path} does not exist")
    if not rows:
        raise ConfigurationError(f"QA file {qa_path} holds no questions")
    extra: dict[str, dict[str, Any]] = {}
    if references_path:
        missing = f"reference answers file {references_path} does not exist"
        for row in read_jsonl_objects(Path(references_path), missing):
            if isinstance(row.get("question"), str):
                extra[row["question"].strip()] = row
    items = []
    for number, row in enumerate(rows, start=1):
        joined = {**row}
        ref = extra.get(str(row.get("question", "")).strip())
        if ref:
            joined.setdefault("answer", ref.get("answer"))
            joined.setdefault("evidence", ref.get("evidence"))
        try:
            items.append(QAReference.model_validate(joined))
        except ValidationError as exc:
            raise ConfigurationError(f"{qa_path} line {number}: {exc.errors()[0]['msg']}") from exc
    return items


def select_questions(items: Sequence[QAReference], kinds: Sequence[str], limit: int) -> list[QAReference]:
    """Questions the models answer: those with a reference answer, of the configured kinds, at most `limit`."""
    chosen = [q for q in items if q.answer and (not kinds or (q.kind or "") in kinds)]
    return chosen[:limit]


def reference_contexts(retriever: Retriever, item: QAReference, k: int = 8) -> list[str]:
    """Chunks of the source document that hold the evidence (or, without evidence, its best chunk for the
    question): the reference contexts of Ragas' non-LLM context metrics."""
    target = normalize_link(item.link)
    if item.evidence:
        result = retriever.search(item.evidence, k=k, author=item.author)
        needle = " ".join(item.evidence.split())[:120]
        found = [
            h.chunk.text
            for h in result.hits
            if normalize_link(h.chunk.link) == target and needle in " ".join(h.chunk.text.split())
        ]
        if found:
            return found[:2]
    result = retriever.search(item.question, k=k * 3, author=item.author)
    same = [h.chunk.text for h in result.hits if normalize_link(h.chunk.link) == target]
    return same[:1]


# --- capturing the RAG service's prompt ----------------------------------------------------------------------------


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
                result = await rag.answer(
                    item.question, k=k, author=item.author, max_tokens=max_tokens, temperature=0.0
                )
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
            }
        )

    return list(await asyncio.gather(*(one(i, item) for i, item in enumerate(items))))


# --- non-LLM metrics ------------------------------------------------------------------------------------------------


def ragas_available() -> tuple[bool, str]:
    """(importable, version or the reason it is not)."""
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    try:
        import ragas

        return True, str(getattr(ragas, "__version__", "?"))
    except Exception as exc:  # ImportError, or a broken dependency (langchain-community 0.4.2 breaks its import)
        return False, f"{type(exc).__name__}: {exc}"[:300]


async def _ragas_nonllm(answer: GeneratedAnswer, threshold: float) -> dict[str, float | None]:
    """Ragas' own non-LLM metrics for one answer (raises if Ragas misbehaves; the caller falls back)."""
    from ragas.dataset_schema import SingleTurnSample
    from ragas.metrics import NonLLMContextPrecisionWithReference, NonLLMContextRecall
    from ragas.metrics.collections import NonLLMStringSimilarity, RougeScore

    out: dict[str, float | None] = {}
    if answer.contexts and answer.reference_contexts:
        sample = SingleTurnSample(retrieved_contexts=answer.contexts, reference_contexts=answer.reference_contexts)
        out["rag.nonllm_context_precision"] = finite(
            await NonLLMContextPrecisionWithReference(threshold=threshold).single_turn_ascore(sample)
        )
        out["rag.nonllm_context_recall"] = finite(
            await NonLLMContextRecall(threshold=threshold).single_turn_ascore(sample)
        )
    if answer.reference and answer.answer.strip():
        similarity = await NonLLMStringSimilarity().ascore(reference=answer.reference, response=answer.answer)
        rouge = await RougeScore(rouge_type="rougeL", mode="fmeasure").ascore(
            reference=answer.reference, response=answer.answer
        )
        out["rag.string_similarity"] = finite(similarity.value)
        out["rag.rouge_l"] = finite(rouge.value)
    return out


async def nonllm_metrics(
    answer: GeneratedAnswer, threshold: float, support_threshold: float, use_ragas: bool
) -> tuple[dict[str, Any], str]:
    """Every metric that needs no LLM for one RAG answer; returns (metrics, implementation used)."""
    metrics: dict[str, Any] = {}
    implementation = "llm_engineering"
    if answer.contexts and answer.reference_contexts:
        metrics["rag.nonllm_context_precision"] = context_precision_with_reference(
            answer.contexts, answer.reference_contexts, threshold
        )
        metrics["rag.nonllm_context_recall"] = context_recall_with_reference(
            answer.contexts, answer.reference_contexts, threshold
        )
    links = [normalize_link(x) for x in answer.context_links]
    references = [normalize_link(x) for x in answer.reference_links]
    metrics["rag.id_context_precision"] = id_precision(links, references)
    metrics["rag.id_context_recall"] = id_recall(links, references)
    if answer.reference:
        metrics["rag.string_similarity"] = levenshtein_similarity(answer.answer, answer.reference)
        metrics["rag.rouge_l"] = rouge_l(answer.answer, answer.reference)
        metrics["rag.rouge_1"] = rouge_n(answer.answer, answer.reference, 1)
    if use_ragas:
        try:
            metrics.update(await _ragas_nonllm(answer, threshold))
            implementation = "ragas"
        except Exception as exc:  # keep ours; say so
            logger.warning(f"Ragas non-LLM metrics failed ({type(exc).__name__}: {exc}); using the built-in ones")
    citations = citation_validity(answer.answer, answer.contexts, support_threshold)
    metrics["citations"] = citations
    metrics["rag.cited_answer_rate"] = 1.0 if citations["citations"] else 0.0
    metrics["rag.citation_valid_rate"] = citations["valid_rate"]
    metrics["rag.citation_supported_rate"] = citations["supported_rate"]
    return metrics, implementation


def aggregate(answers: Sequence[GeneratedAnswer], keys: Sequence[str]) -> dict[str, float | None]:
    return {key: mean([a.metrics.get(key) for a in answers]) for key in keys}


def speed_metrics(answers: Sequence[GeneratedAnswer]) -> dict[str, float | None]:
    latencies = sorted(a.latency_s for a in answers if a.latency_s)
    rates = [a.completion_tokens / a.latency_s for a in answers if a.latency_s and a.completion_tokens]

    def quantile(q: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(round(q * (len(latencies) - 1))))]

    return {
        "speed.latency_p50_s": quantile(0.5),
        "speed.latency_p95_s": quantile(0.95),
        "speed.tokens_per_s": sum(rates) / len(rates) if rates else None,
    }


# --- Ragas LLM metrics through the judge ------------------------------------------------------------------------


def ragas_llm_adapter(judge: LLM, max_tokens: int, timeout_s: float):
    """A Ragas `InstructorBaseRagasLLM` that asks the judge through the project's LLM port with a `json_schema`
    response format (what vLLM honours), retrying an invalid answer once."""
    from ragas.llms.base import InstructorBaseRagasLLM

    class PortRagasLLM(InstructorBaseRagasLLM):
        def __init__(self) -> None:
            self.calls = 0
            self.invalid = 0

        async def agenerate(self, prompt: str, response_model):
            schema = response_model.model_json_schema()
            schema["title"] = response_model.__name__
            messages = [{"role": "user", "content": prompt}]
            for _attempt in range(2):
                self.calls += 1
                parsed, _raw = await judge.chat_json(
                    messages, schema, max_tokens=max_tokens, temperature=0.0, timeout_s=timeout_s
                )
                if parsed is not None:
                    try:
                        return response_model.model_validate(parsed)
                    except ValidationError:
                        pass
                self.invalid += 1
            raise ValueError(f"the judge gave no valid {response_model.__name__} twice")

        def generate(self, prompt: str, response_model):
            return asyncio.run(self.agenerate(prompt, response_model))

    return PortRagasLLM()


def ragas_embeddings_adapter(embedder: Embedder):
    """A Ragas `BaseRagasEmbedding` over the project's embedding model (for answer relevancy)."""
    from ragas.embeddings.base import BaseRagasEmbedding

    class PortRagasEmbedding(BaseRagasEmbedding):
        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return [float(x) for x in embedder.encode_query(text)]

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return await asyncio.to_thread(self.embed_text, text)

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return [[float(x) for x in row] for row in embedder.encode(list(texts))]

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return await asyncio.to_thread(self.embed_texts, texts)

    return PortRagasEmbedding()


def build_ragas_llm_metrics(
    names: Sequence[str], llm: Any, embeddings: Any | None
) -> tuple[dict[str, Any], list[Skipped]]:
    from ragas.metrics.collections import AnswerRelevancy, ContextPrecision, ContextRecall, Faithfulness

    metrics: dict[str, Any] = {}
    skipped: list[Skipped] = []
    for name in names:
        if name == "faithfulness":
            metrics[name] = Faithfulness(llm=llm)
        elif name == "answer_relevancy":
            if embeddings is None:
                skipped.append(Skipped(metric="rag.answer_relevancy", reason="no embedding model for Ragas"))
                continue
            metrics[name] = AnswerRelevancy(llm=llm, embeddings=embeddings, strictness=1)
        elif name == "context_precision":
            metrics[name] = ContextPrecision(llm=llm)
        elif name == "context_recall":
            metrics[name] = ContextRecall(llm=llm)
    return metrics, skipped


def _ragas_inputs(name: str, answer: GeneratedAnswer) -> dict[str, Any] | None:
    if not answer.answer.strip() or not answer.contexts:
        return None
    if name == "faithfulness":
        return {"user_input": answer.question, "response": answer.answer, "retrieved_contexts": answer.contexts}
    if name == "answer_relevancy":
        return {"user_input": answer.question, "response": answer.answer}
    if not answer.reference:
        return None
    if name == "context_precision":
        return {"user_input": answer.question, "reference": answer.reference, "retrieved_contexts": answer.contexts}
    if name == "context_recall":
        return {"user_input": answer.question, "retrieved_contexts": answer.contexts, "reference": answer.reference}
    return None


async def score_ragas_llm(
    metrics: dict[str, Any], answers: Sequence[GeneratedAnswer], timeout_s: float, deadline: float
) -> dict[str, int]:
    """Score each answer with each Ragas LLM metric (bounded by a per-call timeout and an overall deadline).
    Results go into `answer.metrics` (`rag.<name>`: a number, or NaN-as-None with `rag.<name>_error`).
    Returns counts: scored, failed, skipped (deadline)."""
    counts = {"scored": 0, "failed": 0, "skipped": 0}
    for answer in answers:
        for name, metric in metrics.items():
            inputs = _ragas_inputs(name, answer)
            if inputs is None:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 1:
                counts["skipped"] += 1
                answer.metrics[f"rag.{name}_error"] = "evaluation budget spent"
                continue
            try:
                result = await asyncio.wait_for(metric.ascore(**inputs), timeout=min(timeout_s, remaining))
                value = finite(getattr(result, "value", result))
                answer.metrics[f"rag.{name}"] = value
                if value is None:
                    answer.metrics[f"rag.{name}_error"] = "NaN (the judge produced no usable statements)"
                    counts["failed"] += 1
                else:
                    counts["scored"] += 1
            except TimeoutError:
                answer.metrics[f"rag.{name}"] = None
                answer.metrics[f"rag.{name}_error"] = f"timed out after {timeout_s:.0f}s (a weak judge loops)"
                counts["failed"] += 1
            except Exception as exc:
                answer.metrics[f"rag.{name}"] = None
                answer.metrics[f"rag.{name}_error"] = f"{type(exc).__name__}: {exc}"[:200]
                counts["failed"] += 1
    return counts
