"""`poe run-llm-server` / `poe stop-llm-server`: the local vLLM OpenAI-compatible server (up | down | status)."""

from __future__ import annotations

import json

import click

from tools._cli import bootstrap, run_cli


@click.group()
def cli() -> None:
    pass


@cli.command()
def up() -> None:
    """Start vLLM with the configured model and wait until GET /v1/models answers."""
    from llm_engineering.infrastructure.ml.inference_engine import start_llm_server

    settings = bootstrap()
    started = start_llm_server(settings)  # its errors become one `Error:` line (run_cli)
    click.echo(f"{'started' if started else 'already running'}: {settings.llm_base_url} ({settings.llm_model_id})")


@cli.command()
def down() -> None:
    """Stop the vLLM server this project started."""
    from llm_engineering.infrastructure.ml.inference_engine import stop_llm_server

    stopped = stop_llm_server(bootstrap())  # the whole process group, and what a killed server left behind
    click.echo("stopped" if stopped else "not running (nothing this project started)")


@cli.command()
def status() -> None:
    from llm_engineering.infrastructure.ml.inference_engine import llm_server_status

    click.echo(json.dumps(llm_server_status(bootstrap()), indent=2))


if __name__ == "__main__":
    run_cli(cli)
