"""`poe run-llm-server` / `poe stop-llm-server`: the local vLLM server (up | down | status | switch)."""

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
    from llm_engineering.infrastructure.serving import active_serving

    settings = bootstrap()
    started = start_llm_server(settings)  # its errors become one `Error:` line (run_cli)
    # After a hot switch the recorded version is served (DATA_DIR/serving/active.json).
    state = active_serving(settings)
    where, model = (state.base_url, state.model_spec) if state else (settings.llm_base_url, settings.llm_model_id)
    click.echo(f"{'started' if started else 'already running'}: {where} ({model})")


@cli.command()
def down() -> None:
    """Stop the vLLM server(s) this project started (the one a hot switch made active included)."""
    from llm_engineering.infrastructure.ml.inference_engine import stop_llm_server

    stopped = stop_llm_server(bootstrap())  # the whole process group, and what a killed server left behind
    click.echo("stopped" if stopped else "not running (nothing this project started)")


@cli.command()
def status() -> None:
    from llm_engineering.infrastructure.ml.inference_engine import llm_server_status

    click.echo(json.dumps(llm_server_status(bootstrap()), indent=2))


@cli.command()
@click.option("--model", "model_spec", required=True, help="What to serve, e.g. llm-twin:v0004 or llm-twin:production.")
@click.option("--drain-timeout", default=120.0, show_default=True, help="Seconds the old engine may take to drain.")
def switch(model_spec: str, drain_timeout: float) -> None:
    """Serve another model version without downtime: a second engine, the API follows, the old one drains."""
    from llm_engineering.infrastructure.serving import switch_serving

    result = switch_serving(bootstrap(), model_spec, drain_timeout_s=drain_timeout)
    click.echo(result.model_dump_json(indent=2))


if __name__ == "__main__":
    run_cli(cli)
