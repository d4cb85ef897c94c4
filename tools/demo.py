"""The main job, end to end on embedded defaults (README command 1).

    python -m tools.demo [--sample-dir data/sample]

1. the embedded MongoDB-wire warehouse (started on demand) receives the sample corpus through the import path;
2. prints what the warehouse holds.
"""

from __future__ import annotations

from pathlib import Path

import click

from tools._cli import bootstrap

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _banner(text: str) -> None:
    click.echo(click.style(f"\n=== {text}", bold=True))


@click.command()
@click.option("--sample-dir", default=PROJECT_ROOT / "data" / "sample", type=click.Path(path_type=Path))
def main(sample_dir: Path) -> None:
    settings = bootstrap()
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.domain.types import DataCategory
    from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse

    try:
        _banner(f"1. Raw data warehouse ({settings.mongodb_uri}): importing {sample_dir}")
        warehouse = MongoWarehouse()
        click.echo(import_warehouse(warehouse, sample_dir).summary_table())

        _banner("2. What the warehouse holds")
        for user in warehouse.list_users():
            counts = {
                c.value: len(warehouse.find_documents(c, [user.id]))
                for c in (DataCategory.ARTICLES, DataCategory.POSTS, DataCategory.REPOSITORIES)
            }
            click.echo(f"{user.full_name}: " + ", ".join(f"{n} {c}" for c, n in counts.items()))
            for doc in warehouse.find_documents(DataCategory.ARTICLES, [user.id])[:3]:
                click.echo(f"  - {doc.title}  <{doc.link}>")
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc


if __name__ == "__main__":
    main()
