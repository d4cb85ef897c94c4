"""Ragas behind the project's ports: its non-LLM metrics, and its LLM metrics through the judge (LLM and
embeddings adapters)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from llm_engineering.application.evaluation.results import GeneratedAnswer, Skipped, finite
from llm_engineering.application.ports import LLM, Embedder


def ragas_available() -> tuple[bool, str]:
    """(importable, version or the reason it is not)."""
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    try:
        import ragas

        return True, str(getattr(ragas, "__version__", "?"))
    except Exception as exc:  # ImportError, or a broken dependency (langchain-community 0.4.2 breaks its import)
        return False, f"{type(exc).__name__}: {exc}"[:300]


async def ragas_nonllm_metrics(answer: GeneratedAnswer, threshold: float) -> dict[str, float | None]:
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
