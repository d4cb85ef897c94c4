"""The LLM / RAG service tests' fixtures live in fixtures_llm.py; tests/integration/conftest.py registers them once
for every folder that needs the session's vLLM server."""
