"""Start / stop / show the embedded local services: the MongoDB-wire warehouse and the vLLM server.

python -m tools.local_infra up [--no-llm]
python -m tools.local_infra down
python -m tools.local_infra status
"""

from __future__ import annotations

import click

from tools._cli import bootstrap


def _services(settings):
    """(name, LocalService | None) for every service this project can run locally."""
    from llm_engineering.infrastructure.mongo.server import embedded_server
    from llm_engineering.model.inference_engine import llm_server_service

    return [("warehouse (MongoDB wire)", embedded_server(settings)), ("LLM (vLLM)", llm_server_service(settings))]


@click.group()
def main() -> None:
    """Embedded local services."""


@main.command()
@click.option("--no-llm", is_flag=True, help="Start only the warehouse (no vLLM server).")
def up(no_llm: bool) -> None:
    settings = bootstrap()
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.domain.redaction import redact_credentials
    from llm_engineering.infrastructure.mongo.server import embedded_server
    from llm_engineering.model.inference_engine import start_llm_server

    try:
        warehouse = embedded_server(settings)
        if warehouse is None:
            where = redact_credentials(settings.mongodb_uri)
            click.echo(f"Warehouse: MONGODB_URI points at {where} (not started here).")
        else:
            warehouse.start()
        if not no_llm:
            start_llm_server(settings)
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("Local infrastructure is up. Stop it with `poe local-infrastructure-down`.")


@main.command()
def down() -> None:
    settings = bootstrap()
    for name, service in _services(settings):
        if service is not None:
            stopped = service.stop()
            click.echo(f"{name}: {'stopped' if stopped else 'not started by this project'}")


@main.command()
def status() -> None:
    settings = bootstrap()
    for name, service in _services(settings):
        if service is None:
            click.echo(f"{name}: external (configured by URI)")
        else:
            state = "running" if service.is_running() else "stopped"
            if service.orphans():
                state += ", but processes it started are still alive: `poe local-infrastructure-down` stops them"
            click.echo(f"{name}: {state} on {service.host}:{service.port} (log: {service.log_file})")


if __name__ == "__main__":
    main()
