"""tiny-rag: a small hybrid retriever for experiments."""

from tiny_rag.chunking import chunk_tokens, tokenize
from tiny_rag.search import HybridIndex, Hit, reciprocal_rank_fusion

__all__ = ["chunk_tokens", "tokenize", "HybridIndex", "Hit", "reciprocal_rank_fusion"]
__version__ = "0.3.1"
