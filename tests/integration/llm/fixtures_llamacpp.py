"""Fixtures for the llama.cpp engine tests: one llama-server per session (LLM_ENGINE=llamacpp, the packaged model
exported to GGUF on first start), and the sample corpus served by the real RAG app through it. Skipped, with the
reason, where llama.cpp is not built (tools/install_llama_cpp.sh; CI skips the build, see docs/inference.md)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_engineering.settings import Settings
from tests.integration.llm.fixtures_llm import SAMPLE_CORPUS, link_prepared_model


def require_llama_server(settings: Settings) -> None:
    binary = Path(settings.llama_cpp_dir) / "bin" / "llama-server"
    if not binary.exists():
        pytest.skip(
            f"llama.cpp is not built ({binary} missing): run tools/install_llama_cpp.sh "
            "(setup.sh builds it unless SKIP_LLAMA_CPP=1; CI skips the ~10-minute build)"
        )


def llamacpp_settings(data_dir: Path, prepared_model_dir: Path, **overrides) -> Settings:
    from llm_engineering.infrastructure.local_services import find_free_port

    link_prepared_model(data_dir, prepared_model_dir)
    return Settings(
        data_dir=data_dir,
        llm_engine="llamacpp",
        llm_base_url=f"http://127.0.0.1:{find_free_port()}/v1",
        llm_max_retries=0,
        **overrides,
    )


@pytest.fixture(scope="session")
def llamacpp_server(tmp_path_factory: pytest.TempPathFactory, prepared_model_dir: Path) -> Iterator[Settings]:
    """llama-server on the packaged model's q8_0 GGUF (exported on start), for the whole session."""
    from llm_engineering.infrastructure.ml.inference_engine import start_llm_server, stop_llm_server

    settings = llamacpp_settings(tmp_path_factory.mktemp("llamacpp"), prepared_model_dir)
    require_llama_server(settings)
    started = time.monotonic()
    assert start_llm_server(settings) is True
    print(f"\nllama-server ready in {time.monotonic() - started:.0f}s (export included) at {settings.llm_base_url}")
    try:
        yield settings
    finally:
        stop_llm_server(settings)


@pytest.fixture(scope="session")
def llamacpp_rag_settings(
    tmp_path_factory: pytest.TempPathFactory, mongo_uri: str, prepared_model_dir: Path, llamacpp_server: Settings
) -> Settings:
    """The sample corpus in the warehouse and the vector store, answered through llama.cpp."""
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.wiring import Container

    data_dir = tmp_path_factory.mktemp("llamacpp-rag")
    link_prepared_model(data_dir, prepared_model_dir)
    settings = llamacpp_server.model_copy(
        update={
            "data_dir": data_dir,
            "mongodb_uri": mongo_uri,
            "mongodb_database": f"rag_{uuid.uuid4().hex[:10]}",
            "mongodb_embedded": False,
            "rag_max_answer_tokens": 48,
            "opik_url": None,
        }
    )
    container = Container(settings)
    import_warehouse(container.warehouse, SAMPLE_CORPUS, show_progress=False)
    assert container.feature_engineering(show_progress=False).run("all").chunks_total > 0
    container.close()
    return settings
