"""The one LLM client (OpenAI-compatible HTTP) and prompt monitoring."""
