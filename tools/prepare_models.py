"""`poe prepare-models`: convert the packaged SmolLM2 GGUF into a cached HF checkpoint for vLLM."""

from __future__ import annotations

import sys

import click

from llm_engineering.domain.errors import LLMTwinError
from llm_engineering.settings import get_settings
from tools._cli import run_cli


@click.command()
@click.option("--force", is_flag=True, help="Convert again even if a prepared checkpoint exists.")
def main(force: bool) -> None:
    from llm_engineering.infrastructure.ml.prepare import prepare_packaged_model

    try:
        path = prepare_packaged_model(get_settings(), force=force)
    except LLMTwinError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(str(path))


if __name__ == "__main__":
    run_cli(main)
