"""Thin ZenML step of the embedding_training pipeline; the logic is in llm_engineering.wiring.embedding_training.

The weights go to the registry (DATA_DIR/models/embedder/vN); the step artifact is the small run report, linked to
the `embedder` model version of the run with the before/after numbers, the dataset hash and the registry version.
"""

from __future__ import annotations

from typing import Annotated, Any

from zenml import log_metadata, step

from llm_engineering.wiring.embedding_training import EmbedderRunReport


@step(enable_cache=False)
def adapt_embedder(
    config: dict[str, Any], dataset_dir: str | None = None
) -> Annotated[EmbedderRunReport, "embedder_report"]:
    from llm_engineering.infrastructure.ml.embedding_training import parse_embedding_training_config
    from llm_engineering.infrastructure.registry import register_in_zenml
    from llm_engineering.wiring.embedding_training import train_embedder

    report, registered = train_embedder(parse_embedding_training_config(config), dataset_dir)
    metadata = {
        "base_model": report.base_model,
        "dataset_version": report.dataset["version"],
        "dataset_hash": report.dataset["hash"],
        "examples": report.examples,
        "before": report.before,
        "after": report.after or {},
        "improved": report.improved,
        "registered": report.registered or "",
        "refused": report.refused or "",
        "training": report.training,
    }
    log_metadata(metadata=metadata)
    if registered is not None:
        register_in_zenml(registered, metadata)
    return report
