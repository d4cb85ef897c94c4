"""Import platform exports, RSS/Atom feeds and folders of notes for one author into the warehouse.

python -m tools.import_archive --author "Ada Lovelace" --path medium-export.zip --path Basic_LinkedInDataExport.zip
python -m tools.import_archive --author "Ada Lovelace" --path substack-export.zip --site-url https://ada.substack.com
python -m tools.import_archive --author "Ada Lovelace" --path https://ada.example.org/feed.xml --path ~/notes

Every path is read and checked before anything is written: a bad file stops the import with an error naming the
file (and row), nothing written, exit 1. Exit 1 too when a summary-only feed item could not be crawled (the rest
is stored). docs/sources.md tells how to get each export.
"""

from __future__ import annotations

import sys

import click

from tools._cli import bootstrap, run_cli

FORMAT_CHOICES = ("auto", "medium", "linkedin", "substack", "rss", "atom", "folder")


@click.command()
@click.option("--path", "paths", multiple=True, required=True, help="A zip, folder, feed file or feed URL (repeat).")
@click.option("--author", required=True, help='Whose writing it is: "First Last" (created if new).')
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default="auto", show_default=True)
@click.option("--site-url", default=None, help="Public address for exports without one (https://NAME.substack.com).")
@click.option("--include-drafts", is_flag=True, help="Also import drafts and unpublished posts.")
@click.option("--include-responses", is_flag=True, help="Keep Medium responses (as posts).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--verbose", is_flag=True)
def main(
    paths: tuple[str, ...],
    author: str,
    fmt: str,
    site_url: str | None,
    include_drafts: bool,
    include_responses: bool,
    no_progress: bool,
    verbose: bool,
) -> None:
    settings = bootstrap(verbose)
    from llm_engineering.application.sources.report import SourceSpec
    from llm_engineering.domain.errors import CrawlError, ImportFormatError, LLMTwinError
    from llm_engineering.wiring import get_container

    if not author.strip():
        raise click.BadParameter("an author needs a non-empty name", param_hint="--author")
    specs = [
        SourceSpec(
            path=path,
            format=fmt,
            site_url=site_url,
            include_drafts=include_drafts,
            include_responses=include_responses,
        )
        for path in paths
    ]
    importer = get_container(settings).archive_importer()
    try:
        report = importer.import_sources(specs, author, show_progress=not no_progress)
    except (ImportFormatError, CrawlError) as exc:  # raised while reading: before the first write
        raise click.ClickException(f"{exc}\nNothing was written.") from exc
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        importer.close()
    click.echo(f"\nImported for {report.author_full_name}:\n{report.summary_table()}")
    if not report.ok:
        click.echo(f"\n{len(report.failures)} item(s) failed (see above); the others were stored.", err=True)
        sys.exit(1)


if __name__ == "__main__":
    run_cli(main)
