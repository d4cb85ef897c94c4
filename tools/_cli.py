"""Shared start-up for every command: logging to stderr, offline model hubs, ZenML state in the project."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
import yaml
from loguru import logger

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.redaction import redact_credentials
from llm_engineering.infrastructure.zenml_env import configure_zenml
from llm_engineering.settings import Settings, get_settings


def bootstrap(verbose: bool = False) -> Settings:
    """Call first in every tool, before zenml or any model library is imported."""
    logger.remove()
    # Per-request HTTP logs of the LLM client drown the summaries; warnings still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Defence in depth: whatever a message says, credentials in URIs and key=value pairs never reach the log.
    logger.configure(patcher=lambda record: record.update(message=redact_credentials(record["message"])))
    logger.add(sys.stderr, level="DEBUG" if verbose else "INFO", format="<level>{level: <7}</level> {message}")
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configure_zenml(settings)
    # Use packaged weights offline unless the user asked for a hub id while online.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # No phoning home from the ML libraries: comet_ml sends its own internal errors to an internet crash tracker,
    # configured when it is first imported (transformers imports it), and Ragas sends usage analytics.
    os.environ.setdefault("COMET_ERROR_TRACKING_ENABLE", "false")
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    os.environ.setdefault("OPIK_TRACK_DISABLE", "false" if settings.opik_url else "true")
    return settings


def load_yaml_config(path: Path) -> dict:
    """Read a YAML run config, with errors that name the file."""
    if not path.is_file():
        raise ConfigurationError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} must hold a YAML mapping (see configs/ for examples)")
    return data


def run_pipeline(
    pipeline: Any, step: str, output: str, options: dict[str, Any] | None = None, /, **params: Any
) -> tuple[Any, Any]:
    """Run a ZenML pipeline on `params` (no caching; `options` for `with_options`) and return (run, the loaded
    `output` artifact of `step`). The first four are positional only: a pipeline may have an `output` parameter.

    Fail-fast: a failing step stops the run and its own error reaches the caller (a ConfigurationError naming the
    setting, say), not ZenML's generic "Pipeline run has failed due to failure in step(s)" RuntimeError."""
    from zenml.enums import ExecutionMode

    run = pipeline.with_options(enable_cache=False, execution_mode=ExecutionMode.FAIL_FAST, **(options or {}))(**params)
    found = run.steps.get(step)
    if found is None or not found.outputs.get(output):
        what = output.replace("_", " ")
        raise click.ClickException(f"pipeline run {run.name} ended with status {run.status} and no {what}")
    return run, found.outputs[output][0].load()
