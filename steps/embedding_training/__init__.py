"""Thin ZenML steps of the embedding_training pipeline."""

from .steps import adapt_embedder

__all__ = ["adapt_embedder"]
