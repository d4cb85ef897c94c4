"""Logs never hold a secret (issue #25, finding 1): no variable values in tracebacks, one redaction filter over
loguru's sinks and the standard logging module (uvicorn, ZenML), SecretStr values masked by value."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from loguru import logger

from llm_engineering.domain.redaction import redact_credentials, register_secrets, uri_secrets
from llm_engineering.infrastructure import logs
from llm_engineering.settings import Settings

PASSWORD = "pw-Secret-77"
KEY = "sk-live-abcdef123456"


@pytest.fixture
def stream(monkeypatch):
    monkeypatch.setenv("MONGODB_URI", f"mongodb://user:{PASSWORD}@127.0.0.1:27999/?authSource=admin")
    monkeypatch.setenv("LLM_API_KEY", KEY)
    out = io.StringIO()
    logs.configure_logging(Settings(), level="DEBUG", stream=out, fmt=logs.SERVICE_FORMAT)
    handler = logging.StreamHandler(out)
    logging.getLogger("uvicorn.error").addHandler(handler)
    yield out
    logging.getLogger("uvicorn.error").removeHandler(handler)
    logs.configure_logging(level="INFO", stream=sys.stderr)


class Credential:
    def __init__(self, password: str) -> None:
        self.password = password

    def __repr__(self) -> str:
        return f"Credential(password={self.password!r})"


def _fail(settings: Settings) -> None:
    credential = Credential(PASSWORD)  # noqa: F841 - a local whose value diagnose=True used to print
    uri = settings.mongodb_uri  # noqa: F841
    raise KeyError("payload")


def test_a_logged_traceback_shows_no_variable_values(stream):
    settings = Settings()
    try:
        _fail(settings)
    except KeyError:
        logger.exception("POST /search failed")
    text = stream.getvalue()
    assert "Traceback" in text and "KeyError: 'payload'" in text and "_fail" in text
    assert PASSWORD not in text and "Credential(" not in text and "Settings(" not in text


def test_messages_exceptions_and_standard_logging_are_redacted(stream):
    logger.info(f"connecting to mongodb://user:{PASSWORD}@db:27017 with Authorization: Bearer {KEY}")
    logger.warning(f"the key {KEY} and password {PASSWORD} by value")
    try:
        raise RuntimeError(f"login failed for MongoCredential(username='user', password='{PASSWORD}')")
    except RuntimeError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application %s", f"token={KEY}")
        logger.exception(f"failed with api_key={KEY}")
    text = stream.getvalue()
    assert PASSWORD not in text and KEY not in text
    assert "mongodb://***@db:27017" in text and "Authorization: ***" in text
    assert text.count("RuntimeError: login failed") == 2  # the traceback is kept, its secret masked


def test_commands_show_a_logged_exception_as_one_line(monkeypatch):
    out = io.StringIO()
    logs.configure_logging(level="INFO", stream=out, tracebacks=False)
    try:
        try:
            raise ValueError(f"bad value password={PASSWORD}")
        except ValueError:
            logger.exception("step failed")
            logging.getLogger("zenml.orchestrators").addHandler(handler := logging.StreamHandler(out))
            logging.getLogger("zenml.orchestrators").exception("Step %s failed.", "load")
            logging.getLogger("zenml.orchestrators").removeHandler(handler)
    finally:
        logs.configure_logging(level="INFO", stream=sys.stderr)
    text = out.getvalue()
    assert "Traceback" not in text and PASSWORD not in text
    assert "step failed (ValueError: bad value password=***" in text
    assert "Step load failed. (ValueError: bad value password=***" in text


def test_secret_values_of_settings_and_uris():
    settings = Settings(llm_api_key=KEY, mongodb_uri=f"mongodb://u:{PASSWORD}@h:1/db")
    assert {KEY, PASSWORD} <= set(logs.secret_values(settings))
    assert uri_secrets("mongodb://u:p%40ss-word@h/") == ["p%40ss-word", "p@ss-word", "u:p%40ss-word"]
    register_secrets(["tiny", "EMPTY", "hunter22"])
    assert redact_credentials("EMPTY stays, hunter22 goes") == "EMPTY stays, *** goes"
