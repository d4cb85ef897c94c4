"""Thin ZenML steps of the feature pipeline; the logic is in llm_engineering.application.preprocessing."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import log_metadata, step

from llm_engineering.application.preprocessing.features import (
    CleanedBatch,
    FeatureEngineering,
    FeaturePlan,
    FeatureReport,
    WarehouseSnapshot,
    parse_chunking,
)
from llm_engineering.wiring import get_container


def _service(chunking: dict[str, Any] | None = None) -> FeatureEngineering:
    # The container builds the warehouse, store and embedder once per process; steps share them.
    return get_container().feature_engineering(chunking=parse_chunking(chunking))


@step(enable_cache=False)
def query_data_warehouse(author_full_names: list[str]) -> Annotated[WarehouseSnapshot, "raw_documents"]:
    snapshot = _service().query(author_full_names)
    log_metadata(metadata={"authors": snapshot.authors or ["all"], "documents_per_category": snapshot.counts()})
    return snapshot


@step(enable_cache=False)
def plan_features(
    snapshot: WarehouseSnapshot, chunking: dict[str, Any] | None = None
) -> Annotated[FeaturePlan, "feature_plan"]:
    plan = _service(chunking).plan(snapshot)
    counts = {"new": len(plan.new), "changed": len(plan.changed), "unchanged": len(plan.unchanged)}
    log_metadata(metadata={**counts, "removed": len(plan.removed)})
    return plan


@step(enable_cache=False)
def clean_documents(snapshot: WarehouseSnapshot, plan: FeaturePlan) -> Annotated[CleanedBatch, "cleaned_documents"]:
    cleaned = _service().clean(snapshot, plan)
    per_category: dict[str, int] = {}
    for document in cleaned.documents:
        per_category[str(document.category)] = per_category.get(str(document.category), 0) + 1
    log_metadata(
        metadata={
            "cleaned_per_category": per_category,
            "characters": sum(len(d.text) for d in cleaned.documents),
            "seconds": round(cleaned.seconds, 3),
        }
    )
    return cleaned


@step(enable_cache=False)
def chunk_embed_load(
    snapshot: WarehouseSnapshot, plan: FeaturePlan, cleaned: CleanedBatch, chunking: dict[str, Any] | None = None
) -> Annotated[FeatureReport, "feature_report"]:
    report = _service(chunking).index(snapshot, plan, cleaned)
    log_metadata(
        metadata={
            "chunks_written": report.chunks_written,
            "chunks_per_category": report.chunks_per_category,
            "tokens": report.tokens,
            "truncated_chunks": report.truncated_chunks,
            "max_chunk_tokens": report.max_chunk_tokens,
            "chunks_in_store": report.chunks_total,
            "store_rebuilt": report.store_rebuilt,
            "timings_s": report.timings_s,
            "embedding_model": report.embedding_model,
        }
    )
    return report
