"""Run the `generate_datasets` pipeline: the author's cleaned documents → instruct + preference datasets.

python -m tools.generate_datasets --config configs/generate_datasets.yaml [--author NAME ...] [--output DIR]
                                  [--max-extracts N] [--no-zenml]

Default output: a new version folder under DATA_DIR/datasets/ (DATA_DIR/datasets/latest names it).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from llm_engineering.application.tables import format_key_values
from tools._cli import bootstrap, load_yaml_config, run_cli, run_pipeline


def read_dataset_config(path: Path) -> Any:
    from llm_engineering.application.datasets.service import DatasetGenerationConfig
    from llm_engineering.domain.errors import ConfigurationError

    data = load_yaml_config(path)
    try:
        return DatasetGenerationConfig.model_validate(data.get("parameters", {}))
    except ValidationError as exc:
        problems = "; ".join(f"parameters.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"{path}: {problems}") from exc


def run_generation(
    settings: Any,
    config: Any,
    authors: list[str] | None,
    output: Path | None,
    max_extracts: int | None,
    use_zenml: bool = True,
) -> tuple[Any, str]:
    """Generate through the ZenML pipeline (or in this process) and return (DatasetReport, title)."""
    if not use_zenml:
        from llm_engineering.wiring import get_container

        service = get_container(settings).dataset_generation(config)
        try:
            return service.run(authors, output, max_extracts), "Dataset generation (in-process)"
        finally:
            service.close()
    from pipelines.generate_datasets import generate_datasets

    run, report = run_pipeline(
        generate_datasets, "write_datasets", "dataset_report",
        config=config.model_dump(mode="json"), authors=authors or None,
        output=str(output) if output else None, max_extracts=max_extracts,
    )  # fmt: skip
    return report, f"Dataset generation run {run.name}"


def show_samples(report: Any, count: int = 2) -> str:
    """A few rows of the new datasets, shortened."""
    out = Path(report.output_dir)
    lines: list[str] = []
    for name, fields in (("instruct_train.jsonl", ("instruction", "answer")), ("preference_train.jsonl",
                         ("chosen", "rejected"))):  # fmt: skip
        path = out / name
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()[:count]] if path.is_file() else []
        for row in rows:
            lines.append(f"[{name}] {row.get('instruction') or row['prompt'][-1]['content']}")
            for field in fields:
                text = " ".join(str(row[field]).split())
                lines.append(textwrap.indent(f"{field}: {textwrap.shorten(text, 200)}", "    "))
    return "\n".join(lines)


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Dataset config YAML.")
@click.option("--author", "authors", multiple=True, help="An author's full name (repeat; overrides the config).")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Output folder (default: versioned).")
@click.option("--max-extracts", type=click.IntRange(min=1), default=None, help="Use at most N extracts.")
@click.option("--no-zenml", is_flag=True, help="Run the same stages in this process, without ZenML tracking.")
@click.option("--verbose", is_flag=True)
def main(
    config_path: Path,
    authors: tuple[str, ...],
    output: Path | None,
    max_extracts: int | None,
    no_zenml: bool,
    verbose: bool,
) -> None:
    settings = bootstrap(verbose)
    from llm_engineering.domain.errors import LLMTwinError

    try:
        config = read_dataset_config(config_path)
        report, title = run_generation(
            settings, config, list(authors) or None, output, max_extracts, use_zenml=not no_zenml
        )
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"\n{title}:\n{format_key_values(report.summary_rows())}")
    samples = show_samples(report)
    if samples:
        click.echo(f"\nA few samples:\n{samples}")
    if report.instruct.train + report.instruct.test == 0:
        click.echo("\nNo sample survived the filters: see the drops above.", err=True)
        sys.exit(1)


if __name__ == "__main__":
    run_cli(main)
