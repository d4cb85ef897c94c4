"""The LLM / RAG service tests' fixtures live in fixtures_llm.py; tests/integration/conftest.py registers them once
for every folder that needs the session's vLLM server. The llama.cpp engine's fixtures (fixtures_llamacpp.py) are
only needed here."""

from tests.integration.llm.fixtures_llamacpp import llamacpp_rag_settings, llamacpp_server  # noqa: F401
