"""The FastAPI RAG service: REST (/rag), OpenAI-compatible (/v1), health, readiness and a chat page."""
