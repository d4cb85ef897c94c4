"""Run the `digital_data_etl` ZenML pipeline for one author config; exit 1 if any link or archive item failed.

python -m tools.etl --config configs/digital_data_etl_elena_marchetti.yaml

The config lists `links:` to crawl and, optionally, `archives:` (platform exports, notes folders: a path, or a
mapping with path / format / site_url / include_drafts / include_responses) and `feeds:` (RSS/Atom URLs or files).
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

import click
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator

from llm_engineering.application.sources.report import SourceSpec
from llm_engineering.domain.redaction import redact_credentials
from tools._cli import bootstrap, load_yaml_config, run_cli, run_pipeline


def _has_userinfo(link: str) -> bool:
    try:
        return "@" in urlsplit(link.strip()).netloc
    except ValueError:
        return False


class EtlParameters(BaseModel):
    user_full_name: str = Field(min_length=1)
    archives: list[str | SourceSpec] = Field(default_factory=list)
    feeds: list[str | SourceSpec] = Field(default_factory=list)
    links: list[str] = Field(default_factory=list, validate_default=True)  # after archives, feeds: checked with them

    @field_validator("links")
    @classmethod
    def _no_credentials(cls, links: list[str]) -> list[str]:
        # A link is a document's key: it is stored with the document, in the crawl report and in ZenML's run record,
        # and leaves the API as a source. A user name or password in it would be stored and shown everywhere.
        for index, link in enumerate(links):
            if _has_userinfo(link):
                raise ValueError(
                    f"link #{index} ({redact_credentials(link)}) carries a user name or password; remove them "
                    "(they would be stored with the document, in the crawl report and in ZenML's run record)"
                )
        return links

    @field_validator("links")
    @classmethod
    def _something_to_do(cls, links: list[str], info: ValidationInfo) -> list[str]:
        # A field check (not a model check) so it is reported together with the other fields' errors.
        if not (links or info.data.get("archives") or info.data.get("feeds")):
            raise ValueError("give at least one link (or archives / feeds)")
        return links

    def sources(self) -> list[dict]:
        specs = [s if isinstance(s, SourceSpec) else SourceSpec(path=s) for s in [*self.archives, *self.feeds]]
        return [s.model_dump() for s in specs]


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
    from llm_engineering.domain.errors import ImportFormatError, LLMTwinError

    try:
        params = read_etl_config(config_path)  # checked before ZenML loads
        from pipelines.digital_data_etl import digital_data_etl

        step, output = ("crawl_links", "crawl_report") if params.links else ("import_archives", "import_report")
        run, report = run_pipeline(
            digital_data_etl, step, output, user_full_name=params.user_full_name, links=params.links,
            sources=params.sources(),
        )  # fmt: skip
    except ImportFormatError as exc:  # a bad archive: the import step read everything before writing
        raise click.ClickException(f"{exc}\nNothing was imported from the archives and feeds.") from exc
    except LLMTwinError as exc:  # a bad config, or a step's own error (a failing link is reported, not raised)
        raise click.ClickException(str(exc)) from exc
    failed = 0
    imported = run.steps.get("import_archives")
    if imported is not None and imported.outputs.get("import_report"):
        import_report = imported.outputs["import_report"][0].load()
        click.echo(f"\nArchives and feeds for {import_report.author_full_name}:\n{import_report.summary_table()}")
        failed += len(import_report.failures)
    if params.links:
        click.echo(f"\nETL run {run.name} for {report.author_full_name}:\n{report.summary_table()}")
        if not report.ok:
            click.echo(f"\n{len(report.failures)} of {len(report.outcomes)} link(s) failed (see above).", err=True)
            failed += len(report.failures)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run_cli(main)
