"""Start / stop / show the embedded local services: the MongoDB-wire warehouse and the vLLM server.

python -m tools.local_infra up [--no-llm]
python -m tools.local_infra down
python -m tools.local_infra status
"""

from __future__ import annotations

import click

from tools._cli import bootstrap, run_cli


def _services(settings):
    """(name, LocalService | None) for every service this project can run locally (every LLM engine: the configured
    one and those a hot switch started)."""
    from llm_engineering.infrastructure.ml.inference_engine import llm_engine_services, llm_server_service
    from llm_engineering.infrastructure.mongo.server import embedded_server

    configured = llm_server_service(settings)
    engines = [
        ("LLM (vLLM)" if engine.name == configured.name else f"LLM ({engine.name})", engine)
        for engine in llm_engine_services(settings)
    ]
    return [("warehouse (MongoDB wire)", embedded_server(settings)), *(engines or [("LLM (vLLM)", configured)])]


@click.group()
def main() -> None:
    """Embedded local services."""


@main.command()
@click.option("--no-llm", is_flag=True, help="Start only the warehouse (no vLLM server).")
def up(no_llm: bool) -> None:
    settings = bootstrap()
    from llm_engineering.domain.redaction import redact_credentials
    from llm_engineering.infrastructure.ml.inference_engine import start_llm_server
    from llm_engineering.infrastructure.ml.prepare import PACKAGED_MODEL_ALIAS, is_prepared, packaged_model_dir
    from llm_engineering.infrastructure.mongo.server import embedded_server

    warehouse = embedded_server(settings)
    if warehouse is None:
        where = redact_credentials(settings.mongodb_uri)
        click.echo(f"Warehouse: MONGODB_URI points at {where} (not started here).")
    else:
        warehouse.start()  # stops what a killed earlier start left behind first
    if not no_llm:
        if settings.llm_model_id == PACKAGED_MODEL_ALIAS and not is_prepared(packaged_model_dir(settings)):
            # As the README promises: the packaged model is prepared on demand (once, ~25 s), not asked for.
            from llm_engineering.infrastructure.ml.prepare import prepare_packaged_model

            click.echo("Preparing the packaged model first (once; `poe prepare-models` does the same)...")
            prepare_packaged_model(settings)
        start_llm_server(settings)
    click.echo("Local infrastructure is up. Stop it with `poe local-infrastructure-down`.")


@main.command()
def down() -> None:
    """Stop every process group the services started, including what a killed server left behind."""
    settings = bootstrap()
    for name, service in _services(settings):
        if service is not None:
            stopped = service.stop()
            click.echo(f"{name}: {'stopped' if stopped else 'not started by this project'}")


@main.command()
def status() -> None:
    """Each service: running or not, its pid, process group and port, and any processes left behind."""
    settings = bootstrap()
    for name, service in _services(settings):
        if service is None:
            click.echo(f"{name}: external (configured by URI)")
            continue
        state = service.state()
        line = "running" if state["running"] else "stopped"
        if state["pid"]:
            line += f" (pid {state['pid']}, process group {state['pgid']})"
        line += f" on {service.host}:{service.port} (log: {service.log_file})"
        click.echo(f"{name}: {line}")
        if state["leftover_pids"]:
            pids = ", ".join(map(str, state["leftover_pids"]))
            click.echo(
                f"  left behind by a server that is gone: pids {pids}; `poe local-infrastructure-down` stops them",
            )


if __name__ == "__main__":
    run_cli(main)
