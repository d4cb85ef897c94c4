"""Run the `feature_engineering` pipeline: warehouse → clean → chunk → embed → Qdrant (incremental).

python -m tools.features --config configs/feature_engineering.yaml [--no-zenml]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, Field, ValidationError, field_validator

from llm_engineering.application.tables import format_key_values
from tools._cli import bootstrap, load_yaml_config, run_cli, run_pipeline


class FeatureParameters(BaseModel):
    author_full_names: list[str] = Field(default_factory=lambda: ["all"])
    chunking: dict[str, dict[str, Any]] | None = None

    @field_validator("author_full_names", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def read_feature_config(path: Path) -> FeatureParameters:
    from llm_engineering.application.preprocessing.features import parse_chunking
    from llm_engineering.domain.errors import ConfigurationError

    data = load_yaml_config(path)
    try:
        params = FeatureParameters.model_validate(data.get("parameters", {}))
    except ValidationError as exc:
        problems = "; ".join(f"parameters.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"{path}: {problems}") from exc
    try:
        parse_chunking(params.chunking)
    except (ValidationError, ConfigurationError) as exc:
        raise ConfigurationError(f"{path}: parameters.chunking: {exc}") from exc
    return params


def run_feature_pipeline(settings: Any, params: FeatureParameters, use_zenml: bool = True) -> tuple[Any, str]:
    """Run the feature stages through ZenML (or in this process) and return (FeatureReport, title)."""
    if not use_zenml:
        from llm_engineering.application.preprocessing.features import parse_chunking
        from llm_engineering.wiring import get_container

        service = get_container(settings).feature_engineering(chunking=parse_chunking(params.chunking))
        report = service.run(params.author_full_names)
        return report, "Feature engineering (in-process)"
    from pipelines.feature_engineering import feature_engineering

    run, report = run_pipeline(
        feature_engineering, "chunk_embed_load", "feature_report",
        author_full_names=params.author_full_names, chunking=params.chunking,
    )  # fmt: skip
    return report, f"Feature engineering run {run.name}"


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Feature config YAML.")
@click.option("--no-zenml", is_flag=True, help="Run the same stages in this process, without ZenML tracking.")
@click.option("--verbose", is_flag=True)
def main(config_path: Path, no_zenml: bool, verbose: bool) -> None:
    settings = bootstrap(verbose)
    from llm_engineering.domain.errors import LLMTwinError

    try:
        report, title = run_feature_pipeline(settings, read_feature_config(config_path), use_zenml=not no_zenml)
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"\n{title}:\n{format_key_values(report.summary_rows())}")
    if report.truncated_chunks:
        click.echo(f"\n{report.truncated_chunks} chunk(s) exceed the model window: that is a bug.", err=True)
        sys.exit(1)


if __name__ == "__main__":
    run_cli(main)
