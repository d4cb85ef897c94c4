"""Export the data warehouse to JSON files, or import such a folder (this project's or the Handbook's format).

python -m tools.data_warehouse export --data-dir data/export
python -m tools.data_warehouse import --data-dir data/sample
"""

from __future__ import annotations

from pathlib import Path

import click

from tools._cli import bootstrap, run_cli

DATA_DIR_OPTION = click.option(
    "--data-dir", required=True, type=click.Path(path_type=Path, file_okay=False), help="Folder of JSON files."
)


def _transfer(direction: str, data_dir: Path) -> None:
    settings = bootstrap()
    from llm_engineering.application.warehouse.transfer import export_warehouse, import_warehouse
    from llm_engineering.domain.errors import ImportFormatError, LLMTwinError
    from llm_engineering.wiring import get_container

    transfer = export_warehouse if direction == "export" else import_warehouse
    try:
        report = transfer(get_container(settings).warehouse, data_dir)
    except ImportFormatError as exc:
        raise click.ClickException(f"{exc}\nNothing was written.") from exc
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{direction.capitalize()}ed {data_dir}:\n{report.summary_table()}")


@click.group()
def main() -> None:
    """Warehouse export / import."""


@main.command("export")
@DATA_DIR_OPTION
def export_command(data_dir: Path) -> None:
    _transfer("export", data_dir)


@main.command("import")
@DATA_DIR_OPTION
def import_command(data_dir: Path) -> None:
    _transfer("import", data_dir)


if __name__ == "__main__":
    run_cli(main)
