"""Secrets never leave the process in error bodies, logs or command lines."""

from __future__ import annotations

from llm_engineering.domain.redaction import public_message, redact_credentials

WAREHOUSE_ERROR = (
    "Cannot reach the data warehouse at MONGODB_URI='mongodb://admin:s3cret@db.internal:27017/?authSource=admin': "
    "ServerSelectionTimeoutError. Start it with `poe local-infrastructure-up`."
)


def test_credentials_in_urls_and_key_value_pairs_are_masked():
    assert "s3cret" not in redact_credentials(WAREHOUSE_ERROR)
    assert "mongodb://***@db.internal:27017" in redact_credentials(WAREHOUSE_ERROR)
    assert redact_credentials("api_key=sk-live-123 and Authorization: Bearer abc.def") == (
        "api_key=*** and Authorization: ***"
    )
    assert redact_credentials("LLM_API_KEY='hunter2'") == "LLM_API_KEY='***'"
    assert redact_credentials("nothing secret here: 3 authors") == "nothing secret here: 3 authors"


def test_public_messages_name_the_setting_but_not_its_value():
    message = public_message(WAREHOUSE_ERROR)
    assert "MONGODB_URI" in message and "db.internal" not in message and "s3cret" not in message
    llm = "cannot reach the LLM at LLM_BASE_URL=http://10.0.0.7:8000/v1 (model 'x'): start it with `poe run-llm-server`"
    assert public_message(llm) == "cannot reach the LLM at LLM_BASE_URL (model 'x'): start it with `poe run-llm-server`"
    assert public_message("see https://internal.example/docs") == "see <url>"


def test_token_counts_and_logged_structures_are_not_secrets():
    """A RAG log line's `tokens={...}` and `max_tokens=128` are counts; `token=...` still is a secret."""
    line = "rag sources=3 tokens={'prompt': 593, 'completion': 65} max_tokens=128 token=abc HF_TOKEN=hf_x"
    assert redact_credentials(line) == (
        "rag sources=3 tokens={'prompt': 593, 'completion': 65} max_tokens=128 token=*** HF_TOKEN=***"
    )
