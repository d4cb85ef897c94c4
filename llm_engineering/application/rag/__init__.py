"""Retrieval-augmented generation: self-query, hybrid retrieval, fusion and reranking."""
