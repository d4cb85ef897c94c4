"""RAG answer quality without an LLM: context precision/recall against reference contexts, id-based context
metrics, string similarity and ROUGE against reference answers, citation validity and support, speed.

The QA set lives in `qa_set.py`, the answers (with the passages each model saw) come from `rag_capture.py`, and
Ragas' implementations of the same metrics from `ragas_adapters.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loguru import logger

from llm_engineering.application.evaluation.ragas_adapters import ragas_nonllm_metrics
from llm_engineering.application.evaluation.results import GeneratedAnswer, mean
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

# --- QA set ------------------------------------------------------------------------------------------------------


# --- capturing the RAG service's prompt ----------------------------------------------------------------------------


# --- non-LLM metrics ------------------------------------------------------------------------------------------------


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
            metrics.update(await ragas_nonllm_metrics(answer, threshold))
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
