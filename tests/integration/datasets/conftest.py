"""The slow dataset tests reuse the session's real vLLM server and sample corpus (tests/integration/llm)."""

from tests.integration.llm.fixtures_llm import (  # noqa: F401 - fixtures are found by name
    prepared_model_dir,
    rag_corpus_settings,
    vllm_base_url,
)
