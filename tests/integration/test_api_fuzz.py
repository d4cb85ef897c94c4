"""Schemathesis against the app's own OpenAPI schema: every operation, positive and negative data, bounded.

No response may be a server error, and every response must match the published schema (status codes, content
types, bodies). The app is the real one (routes, middleware, validation, error mapping, admission); its RAG and
search services are wired from fakes of the ports so hundreds of cases run in seconds. The real-LLM paths are
covered by tests/integration/llm/ and bench/bench_api_load.py.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is part of the dev extra")

from llm_engineering.infrastructure.api.app import create_app  # noqa: E402
from llm_engineering.settings import Settings  # noqa: E402
from tests.fakes import ScriptedLLM, fake_rag_corpus, fake_services  # noqa: E402

TOPICS = {
    ("Ada Lovelace", "lora"): "LoRA adapters train a few low rank matrices while the base model stays frozen.",
    ("Grace Hopper", "serving"): "Serving with continuous batching keeps the accelerator busy under load.",
}
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
]


def _app():
    settings = Settings(
        inference_allowed_hosts="*",  # schemathesis' ASGI client sends Host: testserver
        inference_max_in_flight=64,
        inference_initial_in_flight=64,
        opik_url=None,
    )
    rag, search, _ = fake_services(fake_rag_corpus(TOPICS), ScriptedLLM(answer="From the notes [1]."))
    return create_app(settings, rag_service=rag, search_service=search)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
    max_examples=40,
    deterministic=True,
)


@schema.parametrize()
def test_no_server_error_and_responses_match_the_schema(case):
    case.call_and_validate(checks=[schemathesis.checks.CHECKS.get_by_names([c])[0] for c in CHECKS])
