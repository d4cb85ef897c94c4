"""Search the feature store (hybrid dense + sparse retrieval) and print the top chunks with their links.

python -m tools.search "how do I chunk code?" --k 5 [--author "Elena Marchetti"] [--mode hybrid]
"""

from __future__ import annotations

import sys
import textwrap

import click

from tools._cli import bootstrap, check_text_argument, run_cli


@click.command()
@click.argument("question")
@click.option("--k", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--author", default=None, help="Only this author's chunks (full name as in the warehouse).")
@click.option("--mode", type=click.Choice(["dense", "sparse", "hybrid", "rerank"]), default=None)
@click.option("--verbose", is_flag=True)
def main(question: str, k: int, author: str | None, mode: str | None, verbose: bool) -> None:
    check_text_argument(question, "QUESTION")
    if author:
        check_text_argument(author, "--author")
    settings = bootstrap(verbose)
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.wiring import get_container

    try:
        result = get_container(settings).search_service.search(question, k=k, author=author, mode=mode)
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    meta = result.metadata
    click.echo(
        f"mode={meta.get('mode')}  reranker={meta.get('reranker')}  author={result.author_full_name or '-'}"
        f" ({meta.get('author_source') or 'none'})  timings_ms={meta.get('timings_ms', {})}"
    )
    if meta.get("warning"):
        click.echo(f"warning: {meta['warning']}", err=True)
        sys.exit(1)
    if not result.hits:
        click.echo("no results")
        return
    for hit in result.hits:
        chunk = hit.chunk
        path = f" [{chunk.metadata['path']}]" if chunk.metadata.get("path") else ""
        click.echo(f"\n{hit.rank}. {hit.score:.4f}  {chunk.title}{path}  ({chunk.category}, {chunk.author_full_name})")
        click.echo(f"   {chunk.link}")
        snippet = textwrap.shorten(" ".join(chunk.text.split()), width=300, placeholder=" …")
        click.echo(textwrap.indent(textwrap.fill(snippet, width=110), "   "))


if __name__ == "__main__":
    run_cli(main)
