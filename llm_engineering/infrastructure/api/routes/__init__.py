"""One router per resource: RAG answers, search, the OpenAI-compatible API, health, and the chat page."""
