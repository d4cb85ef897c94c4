"""Retrieval without the LLM, for `POST /search`, `poe search` and `poe evaluate-retrieval`.

The author filter is resolved once, by the same rule as the RAG service's fallback: an explicitly requested
author (who must exist), else a known author's full name found in the query. The filter actually applied and
how it was found are reported in `RetrievalResult.metadata` ("author_filter", "author_source").
"""

from __future__ import annotations

from llm_engineering.application.ports import AuthorDirectory, Retriever
from llm_engineering.application.rag.self_query import resolve_author_filter
from llm_engineering.domain.chunks import RetrievalResult


class SearchService:
    def __init__(self, retriever: Retriever, authors: AuthorDirectory) -> None:
        self.retriever = retriever
        self.authors = authors

    def search(self, query: str, k: int = 5, author: str | None = None, mode: str | None = None) -> RetrievalResult:
        name, source = resolve_author_filter(self.authors, query, author)
        result = self.retriever.search(query, k=k, author=name, mode=mode)
        result.metadata["author_source"] = source
        return result
