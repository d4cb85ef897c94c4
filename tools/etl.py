"""Run the `digital_data_etl` ZenML pipeline for one author config; exit 1 if any link failed.

python -m tools.etl --config configs/digital_data_etl_elena_marchetti.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from pydantic import BaseModel, Field, ValidationError

from tools._cli import bootstrap, load_yaml_config, run_pipeline


class EtlParameters(BaseModel):
    user_full_name: str = Field(min_length=1)
    links: list[str] = Field(min_length=1)


def read_etl_config(path: Path) -> EtlParameters:
    from llm_engineering.domain.errors import ConfigurationError

    data = load_yaml_config(path)
    try:
        return EtlParameters.model_validate(data.get("parameters", {}))
    except ValidationError as exc:
        problems = "; ".join(f"parameters.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"{path}: {problems}") from exc


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="ETL config YAML.")
@click.option("--verbose", is_flag=True)
def main(config_path: Path, verbose: bool) -> None:
    bootstrap(verbose)
    from llm_engineering.domain.errors import LLMTwinError

    try:
        params = read_etl_config(config_path)  # checked before ZenML loads
        from pipelines.digital_data_etl import digital_data_etl

        run, report = run_pipeline(
            digital_data_etl, "crawl_links", "crawl_report", user_full_name=params.user_full_name, links=params.links
        )
    except LLMTwinError as exc:  # a bad config, or a step's own error (a failing link is reported, not raised)
        raise click.ClickException(str(exc)) from exc
    click.echo(f"\nETL run {run.name} for {report.author_full_name}:\n{report.summary_table()}")
    if not report.ok:
        click.echo(f"\n{len(report.failures)} of {len(report.outcomes)} link(s) failed (see above).", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
