"""`poe run-inference-ml-service`: serve the RAG API, the OpenAI-compatible API and the chat page.

python -m tools.serve [--host 127.0.0.1] [--port 8010]
The LLM must be reachable at LLM_BASE_URL (`poe run-llm-server` starts the local vLLM); GET /ready says what
is missing.
"""

from __future__ import annotations

import click

from tools._cli import bootstrap, run_cli


@click.command()
@click.option("--host", default=None, help="Bind address (default INFERENCE_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default INFERENCE_PORT, 8010).")
@click.option("--verbose", is_flag=True)
def main(host: str | None, port: int | None, verbose: bool) -> None:
    settings = bootstrap(verbose)
    import uvicorn

    from llm_engineering.infrastructure.api.app import create_app
    from llm_engineering.infrastructure.logs import (
        SERVICE_FORMAT,
        configure_logging,
        debug_requested,
        uvicorn_log_config,
    )

    # A service logs tracebacks of genuine bugs (never variable values), timestamped; uvicorn's loggers go through
    # the same redacting sink.
    level = "DEBUG" if verbose or debug_requested() else "INFO"
    configure_logging(settings, level=level, fmt=SERVICE_FORMAT, tracebacks=True)
    from llm_engineering.wiring import get_container

    host = host or settings.inference_host
    port = port or settings.inference_port
    click.echo(f"RAG service on http://{host}:{port}/ (chat page), /rag, /v1/chat/completions, /ready")
    app = create_app(settings, services=get_container(settings))
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=level.lower(),
        access_log=verbose,
        log_config=uvicorn_log_config(level, access_log=verbose),
    )


if __name__ == "__main__":
    run_cli(main)
