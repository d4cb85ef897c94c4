"""One logging set-up for every process: sinks that never print variable values, one redaction filter over all.

`configure_logging` is called by every command (tools/_cli.py) and the service (tools/serve.py):

- every loguru sink is added with `diagnose=False, backtrace=False`, so a logged traceback shows code lines but
  never the values of local variables (a `Settings` or a `MongoCredential` holds passwords);
- the text a sink writes, traceback included, goes through `redact_credentials` (URI credentials, key=value
  secrets, bearer tokens, and the exact values of the process's SecretStr settings and URI passwords);
- the standard `logging` module (uvicorn, ZenML, httpx, transformers) gets the same filter at record creation,
  whatever handler later writes the record; uvicorn's own loggers are routed into loguru (`uvicorn_log_config`).
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Any, TextIO

from loguru import logger
from pydantic import SecretStr

from llm_engineering.domain.redaction import redact_credentials, register_secrets, uri_secrets

CLI_FORMAT = "<level>{level: <7}</level> {message}"
SERVICE_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {name}:{line} - {message}"
_factory_installed = False
# Commands show tracebacks only in debug mode (the error contract); a service always logs them (without values).
_show_tracebacks = True


def debug_requested() -> bool:
    """LOG_LEVEL=DEBUG (or `--debug` on a command, which sets it): tracebacks and debug lines are shown."""
    return os.environ.get("LOG_LEVEL", "").strip().upper() == "DEBUG"


def secret_values(settings: Any) -> list[str]:
    """Every SecretStr value of a settings object, and the passwords in its URI/URL settings."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, str) and ("://" in value and "@" in value):
            found += uri_secrets(value)
    return found


def register_settings_secrets(settings: Any) -> None:
    register_secrets(secret_values(settings))


class _RedactingSink:
    """Writes loguru's formatted text (message and traceback) to a stream after masking secrets."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, message: str) -> None:
        self.stream.write(redact_credentials(str(message)))
        self.stream.flush()


def install_std_logging_redaction() -> None:
    """Mask secrets in every standard-logging record when it is created (message and exception text), so no
    handler of any library can write one. Idempotent."""
    global _factory_installed
    if _factory_installed:
        return
    base = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string is the library's bug; leave the record as it is
            return record
        redacted = redact_credentials(message)
        if record.exc_info and record.exc_info[1] is not None and not _show_tracebacks:
            error = record.exc_info[1]
            redacted += f" ({type(error).__name__}: {redact_credentials(str(error))[:300]})"
            record.exc_info, record.exc_text = None, None
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact_credentials(text)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


class InterceptHandler(logging.Handler):
    """Standard logging → loguru (one sink set, one filter): uvicorn's error and access logs."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info, depth=6).log(level, redact_credentials(record.getMessage()))


def _without_traceback(fmt: str) -> Any:
    """A loguru format that leaves the exception out (a string format gets the traceback appended)."""

    def formatter(record: Any) -> str:
        if record["exception"] is not None and record["exception"].value is not None:
            error = record["exception"].value
            record["extra"]["_error"] = f" ({type(error).__name__}: {str(error)[:300]})"
        else:
            record["extra"]["_error"] = ""
        return fmt + "{extra[_error]}\n"

    return formatter


def configure_logging(
    settings: Any = None,
    level: str = "INFO",
    stream: TextIO | None = None,
    fmt: str = CLI_FORMAT,
    tracebacks: bool = True,
) -> None:
    """Replace every loguru sink by one redacting sink on `stream` (stderr) and filter standard logging.
    `tracebacks=False` (commands outside debug mode): a logged exception shows as one `(Type: message)`."""
    global _show_tracebacks
    if settings is not None:
        register_settings_secrets(settings)
    _show_tracebacks = tracebacks
    install_std_logging_redaction()
    logger.remove()
    logger.configure(patcher=lambda record: record.update(message=redact_credentials(record["message"])))
    logger.add(
        _RedactingSink(stream or sys.stderr),
        level=level,
        format=fmt if tracebacks else _without_traceback(fmt),
        colorize=False,
        diagnose=False,  # never the values of local variables (they hold settings and credentials)
        backtrace=False,
    )


def uvicorn_log_config(level: str = "INFO", access_log: bool = False) -> dict[str, Any]:
    """uvicorn's loggers handed to loguru (through `InterceptHandler`), so they share its sink and filter."""
    handler = {"intercept": {"()": f"{__name__}.InterceptHandler"}}
    loggers = {
        "uvicorn": {"handlers": ["intercept"], "level": level, "propagate": False},
        "uvicorn.error": {"handlers": ["intercept"], "level": level, "propagate": False},
        "uvicorn.access": {
            "handlers": ["intercept"] if access_log else [],
            "level": level if access_log else "WARNING",
            "propagate": False,
        },
    }
    return {"version": 1, "disable_existing_loggers": False, "handlers": handler, "loggers": loggers}
