"""Export the data warehouse to JSON files, or import such a folder (this project's or the Handbook's format).

python -m tools.data_warehouse export --data-dir data/export
python -m tools.data_warehouse import --data-dir data/sample
"""

from __future__ import annotations

from pathlib import Path

import click

from tools._cli import bootstrap


@click.group()
def main() -> None:
    """Warehouse export / import."""


@main.command("export")
@click.option("--data-dir", required=True, type=click.Path(path_type=Path, file_okay=False), help="Target folder.")
def export_command(data_dir: Path) -> None:
    bootstrap()
    from llm_engineering.application.warehouse.transfer import export_warehouse
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse

    try:
        report = export_warehouse(MongoWarehouse(), data_dir)
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Exported to {data_dir}:\n{report.summary_table()}")


@main.command("import")
@click.option("--data-dir", required=True, type=click.Path(path_type=Path, file_okay=False), help="Source folder.")
def import_command(data_dir: Path) -> None:
    bootstrap()
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse

    try:
        report = import_warehouse(MongoWarehouse(), data_dir)
    except LLMTwinError as exc:
        raise click.ClickException(f"{exc}\nNothing was written.") from exc
    click.echo(f"Imported {data_dir}:\n{report.summary_table()}")


if __name__ == "__main__":
    main()
