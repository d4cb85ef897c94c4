"""Shared start-up for every command: logging to stderr, offline model hubs, ZenML state in the project.

The error contract (`run_cli`): a failing command exits non-zero with exactly one `Error: ...` line that names
the file, line or setting, and no traceback unless `--debug` or LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click
import yaml

from llm_engineering.domain.errors import ConfigurationError, LLMTwinError
from llm_engineering.domain.redaction import redact_credentials
from llm_engineering.infrastructure.logs import configure_logging, debug_requested, register_settings_secrets
from llm_engineering.infrastructure.zenml_env import configure_zenml
from llm_engineering.settings import Settings, get_settings


def bootstrap(verbose: bool = False) -> Settings:
    """Call first in every tool, before zenml or any model library is imported."""
    # One redacting sink without variable values in tracebacks; standard logging filtered too (infrastructure.logs).
    debug = debug_requested()
    configure_logging(level="DEBUG" if verbose or debug else "INFO", tracebacks=debug)
    # Per-request HTTP logs of the LLM client drown the summaries; warnings still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    register_settings_secrets(settings)  # their exact values are masked in every log line from here on
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
    check_input_file(path, "config")  # names the file and line of a non-UTF-8 byte
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

    from llm_engineering.infrastructure.zenml_runs import fail_orphaned_runs, pipeline_process_record

    with pipeline_process_record():
        fail_orphaned_runs()  # runs a killed command left "running" are marked failed first
        configured = pipeline.with_options(
            enable_cache=False, execution_mode=ExecutionMode.FAIL_FAST, **(options or {})
        )
        run = configured(**params)
    found = run.steps.get(step)
    if found is None or not found.outputs.get(output):
        what = output.replace("_", " ")
        raise click.ClickException(f"pipeline run {run.name} ended with status {run.status} and no {what}")
    return run, found.outputs[output][0].load()


def _error_line(exc: BaseException) -> str:
    """The one line (plus any detail lines the error carries) a failed command prints."""
    if isinstance(exc, click.ClickException):
        message = exc.format_message()
    elif isinstance(exc, UnicodeDecodeError):
        message = (
            f"input is not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8"
            if not getattr(exc, "path", None)
            else f"{exc.path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        )
    elif isinstance(exc, LLMTwinError):
        message = str(exc)
    elif isinstance(exc, OSError) and exc.filename:
        message = f"{exc.filename}: {exc.strerror or exc}"
    else:
        message = f"{type(exc).__name__}: {exc} (run again with --debug for the traceback)"
    return "Error: " + redact_credentials(message.strip() or type(exc).__name__)


def run_cli(command: click.Command) -> None:
    """Run a click command under the error contract: exit 0 on success; on failure exactly one `Error: ...`
    line on stderr and a non-zero exit; a traceback only with `--debug` (any position) or LOG_LEVEL=DEBUG."""
    args = sys.argv[1:]
    if "--debug" in args:
        args = [a for a in args if a != "--debug"]
        os.environ["LOG_LEVEL"] = "DEBUG"
    try:
        command.main(args=args, prog_name=Path(sys.argv[0]).stem, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        if exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        click.echo(_error_line(exc), err=True)
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("Error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # the contract: every failure becomes one line
        if debug_requested():
            click.echo(redact_credentials("".join(traceback.format_exception(exc)).rstrip()), err=True)
        click.echo(_error_line(exc), err=True)
        sys.exit(getattr(exc, "exit_code", 1) or 1)


def check_input_file(path: Path | str, what: str = "file") -> Path:
    """An input file that exists and is UTF-8 text, checked before any work; errors name the file and line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise click.ClickException(f"{what} {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise click.ClickException(
            f"{what} {path} is not UTF-8 text (line {line}, byte {exc.start}: {exc.reason}); save it as UTF-8"
        ) from None
    return path


def check_output_path(path: Path | str, what: str = "output") -> Path:
    """An output file whose folder exists (or can be made) and is writable, checked before any work starts."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise click.ClickException(f"{what} {path} is a folder; give a file name")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"{what} folder {folder} cannot be created: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise click.ClickException(f"{what} {path} is not writable")
    return path


def check_text_argument(value: str, name: str) -> str:
    """A command-line text that decodes as UTF-8 (Python keeps undecodable bytes as lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise click.ClickException(f"{name} is not valid UTF-8 text (byte {exc.start})") from None
    return value
