"""The session's one vLLM server and embedded sample corpus (tests/integration/llm/fixtures_llm.py), shared by
the LLM, dataset and evaluation tests. Imported here once: a fixture imported into several conftests is a
separate fixture in each, and every folder would start its own server."""

from tests.integration.llm.fixtures_llm import (  # noqa: F401 - fixtures are found by name
    prepared_model_dir,
    rag_app,
    rag_corpus_settings,
    serve_rag,
    vllm_base_url,
)
