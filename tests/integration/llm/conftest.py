"""Fixtures of the LLM / RAG service tests live in fixtures_llm.py (importable by other test folders too)."""

from tests.integration.llm.fixtures_llm import (  # noqa: F401 - fixtures are found by name
    prepared_model_dir,
    rag_app,
    rag_corpus_settings,
    serve_rag,
    vllm_base_url,
)
