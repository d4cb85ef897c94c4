"""`poe run-llm-server` / `poe stop-llm-server`: the local vLLM OpenAI-compatible server (up | down | status)."""

from __future__ import annotations

import json
import sys

import click

from llm_engineering.domain.errors import LLMTwinError
from llm_engineering.settings import get_settings


@click.group()
def cli() -> None:
    pass


@cli.command()
def up() -> None:
    """Start vLLM with the configured model and wait until GET /v1/models answers."""
    from llm_engineering.model.inference_engine import start_llm_server

    settings = get_settings()
    try:
        started = start_llm_server(settings)
    except LLMTwinError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{'started' if started else 'already running'}: {settings.llm_base_url} ({settings.llm_model_id})")


@cli.command()
def down() -> None:
    """Stop the vLLM server this project started."""
    from llm_engineering.model.inference_engine import stop_llm_server

    click.echo("stopped" if stop_llm_server(get_settings()) else "not running (nothing this project started)")


@cli.command()
def status() -> None:
    from llm_engineering.model.inference_engine import llm_server_status

    click.echo(json.dumps(llm_server_status(get_settings()), indent=2))


if __name__ == "__main__":
    cli()
