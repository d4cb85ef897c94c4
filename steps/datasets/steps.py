"""Thin ZenML steps of the `generate_datasets` pipeline; the logic is in llm_engineering.application.datasets.

Each step logs its figures as step metadata; the last one also logs the whole report (the same figures as
report.json) as run metadata, so the dashboard shows counts, drops per reason, grounding and throughput.
"""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step

from llm_engineering.application.datasets.service import (
    DatasetGenerationConfig,
    DatasetGenerationService,
    ExtractSet,
    Generation,
    SourceDocuments,
)
from llm_engineering.domain.datasets import DatasetReport
from llm_engineering.wiring import get_container


def _service(config: dict[str, Any]) -> DatasetGenerationService:
    return get_container().dataset_generation(DatasetGenerationConfig.model_validate(config))


@step(enable_cache=False)
def load_cleaned_documents(
    config: dict[str, Any], authors: list[str] | None = None
) -> Annotated[SourceDocuments, "cleaned_documents"]:
    source = _service(config).load(authors)
    per_category: dict[str, int] = {}
    for document in source.documents:
        per_category[str(document.category)] = per_category.get(str(document.category), 0) + 1
    log_metadata(metadata={"authors": source.authors, "documents": len(source.documents), "per_category": per_category})
    return source


@step(enable_cache=False)
def build_extracts(
    config: dict[str, Any], source: SourceDocuments, max_extracts: int | None = None
) -> Annotated[ExtractSet, "extracts"]:
    extracts = _service(config).extract(source, max_extracts)
    tokens = [e.token_count for e in extracts.extracts]
    log_metadata(
        metadata={
            "extracts": extracts.total,
            "extracts_used": len(extracts.extracts),
            "drops": extracts.drops,
            "max_tokens": max(tokens, default=0),
            "mean_tokens": round(sum(tokens) / len(tokens), 1) if tokens else 0,
        }
    )
    return extracts


@step(enable_cache=False)
def generate_samples(config: dict[str, Any], extracts: ExtractSet) -> Annotated[Generation, "generation"]:
    service = _service(config)
    try:
        generation = service.generate(extracts)
    finally:
        service.close()
    log_metadata(
        metadata={
            "instructions_generated": generation.instructions_generated,
            "kept": len(generation.candidates),
            "drops": generation.drops,
            "llm_calls": generation.llm_calls,
            "cache_hits": generation.cache_hits,
            "wall_s": round(generation.wall_s, 2),
            "models": {k: v for k, v in generation.models.items() if v},
        }
    )
    return generation


@step(enable_cache=False)
def write_datasets(
    config: dict[str, Any],
    source: SourceDocuments,
    extracts: ExtractSet,
    generation: Generation,
    output: str | None = None,
) -> Annotated[DatasetReport, "dataset_report"]:
    report = _service(config).write(source, extracts, generation, output)
    metadata = report.metadata()
    log_metadata(metadata=metadata)
    log_metadata(metadata=metadata, run_id_name_or_prefix=get_step_context().pipeline_run.id)
    return report
