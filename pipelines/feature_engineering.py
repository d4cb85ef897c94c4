from typing import Any

from zenml import pipeline

from steps.feature_engineering import chunk_embed_load, clean_documents, plan_features, query_data_warehouse


@pipeline
def feature_engineering(author_full_names: list[str], chunking: dict[str, Any] | None = None) -> None:
    """Warehouse → clean → chunk → embed → Qdrant; only new or changed documents are (re)indexed."""
    snapshot = query_data_warehouse(author_full_names)
    plan = plan_features(snapshot, chunking)
    cleaned = clean_documents(snapshot, plan)
    chunk_embed_load(snapshot, plan, cleaned, chunking)
