"""`poe run-twin-rollback [--to vNNNN]`: production back to the previous twin version, without downtime.

Points the registry's `production` at the version it held before (its audit trail, or `--to`), records who and
why (`history.jsonl`), sets the ZenML stage, and hot-switches the served engine when one is served
(docs/serving.md).
"""

from __future__ import annotations

import json

import click

from tools._cli import bootstrap, run_cli


@click.command()
@click.option("--to", "to_version", default=None, help="The version to serve (v0003 or 3); default: the previous one.")
@click.option("--reason", default="", help="Why (recorded in the registry's history.jsonl).")
@click.option("--actor", default="", help="Who (default user@host).")
@click.option("--model-name", default=None, help="Registered model (default llm-twin).")
@click.option("--no-switch", is_flag=True, help="Move the pointer only; leave the served engine as it is.")
@click.option("--drain-timeout", default=120.0, show_default=True, help="Seconds the old engine may take to drain.")
def main(
    to_version: str | None, reason: str, actor: str, model_name: str | None, no_switch: bool, drain_timeout: float
) -> None:
    settings = bootstrap()
    from llm_engineering.infrastructure.serving.rollback import rollback_production

    result = rollback_production(
        settings,
        to_version,
        name=model_name,
        actor=actor,
        reason=reason,
        switch=not no_switch,
        drain_timeout_s=drain_timeout,
    )
    record = result["record"]
    click.echo(f"production: {record['model']}:{record['previous'] or 'none'} -> {record['model']}:{record['version']}")
    if result["switch"]:
        click.echo("served: " + json.dumps(result["switch"], indent=2, default=str))
    else:
        click.echo("served: no engine runs; the next `poe run-llm-server` serves LLM_MODEL_ID")


if __name__ == "__main__":
    run_cli(main)
