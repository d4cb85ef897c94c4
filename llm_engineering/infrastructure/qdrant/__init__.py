"""Qdrant adapters: one lazily created client per URL/path and the feature store on top of it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .client import close_qdrant_clients, get_qdrant_client, qdrant_target

if TYPE_CHECKING:
    from llm_engineering.settings import Settings

    from .store import QdrantFeatureStore


def get_feature_store(settings: Settings) -> QdrantFeatureStore:
    from .store import QdrantFeatureStore

    return QdrantFeatureStore(get_qdrant_client(settings))


__all__ = ["close_qdrant_clients", "get_feature_store", "get_qdrant_client", "qdrant_target"]
