"""Run the `evaluating` pipeline: base vs SFT vs twin on the author's held-out writing and the QA set.

python -m tools.evaluate --config configs/evaluating.yaml [--models base,sft,twin] [--dataset DIR]
                         [--qa FILE] [--output DIR] [--no-zenml]

Models: base | sft | twin | production | a registry spec (llm-twin:v0002, llm-twin-sft:2) | a checkpoint folder,
optionally labelled (`mine=/path/to/ckpt`). Writes report.json, report.html and PNG plots to the output folder
(default DATA_DIR/reports/<version>/) and prints the summary table. Exit 1 on bad input (a missing model, dataset
or QA file), with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from tools._cli import bootstrap, check_input_file, run_cli, run_pipeline


def run(
    settings: Any,
    config: Any,
    models: list[str] | None,
    dataset: str | None,
    qa: str | None,
    output: str | None,
    use_zenml: bool = True,
) -> Any:
    """The evaluation through the ZenML pipeline (or in this process); returns the EvaluationReport."""
    if not use_zenml:
        from llm_engineering.wiring import get_container
        from llm_engineering.wiring.evaluation import prepare_plan, run_evaluation

        plan = prepare_plan(settings, config, models, dataset, qa, output)
        report, _ = run_evaluation(settings, get_container(settings).evaluation(plan.config), plan)
        return report
    from pipelines.evaluating import evaluating

    _, report = run_pipeline(
        evaluating, "write_evaluation_report", "evaluation_report",
        config=config.model_dump(mode="json"), models=models, dataset=dataset, qa=qa, output=output,
    )  # fmt: skip
    return report


def summary_text(report: Any) -> str:
    from llm_engineering.application.evaluation.report import text_table

    lines = [text_table(report)]
    if report.skipped:
        lines.append("\nskipped / failed:")
        lines += [
            f"  - {s.metric}{' (' + ', '.join(s.models) + ')' if s.models else ''}: {s.reason}" for s in report.skipped
        ]
    if report.promotion:
        lines.append(f"\npromotion: {report.promotion.reason}" + (" -> PROMOTED" if report.promotion.applied else ""))
    lines.append(f"\nreport: {Path(report.output_dir) / 'report.html'}")
    return "\n".join(lines)


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Evaluation YAML.")
@click.option("--models", default=None, help="Comma-separated: base,sft,twin (default from the config).")
@click.option("--dataset", default=None, help="Dataset folder or version (default: the newest generated one).")
@click.option("--qa", default=None, help="QA JSONL (question, link, optional answer/evidence).")
@click.option("--output", default=None, help="Report folder (default: DATA_DIR/reports/<version>).")
@click.option("--no-zenml", is_flag=True, help="Run the same phases in this process, without ZenML tracking.")
@click.option("--verbose", is_flag=True)
def main(
    config_path: Path,
    models: str | None,
    dataset: str | None,
    qa: str | None,
    output: str | None,
    no_zenml: bool,
    verbose: bool,
) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see docs/training.md)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = bootstrap(verbose)
    from llm_engineering.application.evaluation.config import load_evaluation_config
    from llm_engineering.domain.errors import LLMTwinError
    from llm_engineering.infrastructure.ml.model_runtime import parse_models_option
    from llm_engineering.wiring.evaluation import prepare_plan

    try:
        config = load_evaluation_config(check_input_file(config_path, "config"))
        if qa:
            check_input_file(qa, "QA file")
        specs = parse_models_option(models, config.models) if models else None
        # Resolve and validate models, dataset and QA file before any work (and before ZenML starts a run).
        prepare_plan(settings, config, specs, dataset, qa, output)
        report = run(settings, config, specs, dataset, qa, output, use_zenml=not no_zenml)
    except LLMTwinError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"\nEvaluation {report.version}:\n{summary_text(report)}")


if __name__ == "__main__":
    run_cli(main)
