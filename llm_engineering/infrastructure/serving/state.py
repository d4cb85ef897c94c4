"""The serving state file: which engine answers for the twin now (`DATA_DIR/serving/active.json`).

Written by `switch_serving` (and by `poe run-llm-server` when it starts the recorded version again), read by the
RAG API (it follows the file: `follower.py`) and by the engine commands (start, stop, status). Written atomically
(a temp file in the same folder, then `os.replace`): a reader sees the old file or the new one, never half of one.
No file means "nothing switched yet": the engine on LLM_BASE_URL serving LLM_MODEL_ID answers, as before.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from llm_engineering.settings import Settings

STATE_DIRNAME = "serving"
STATE_FILENAME = "active.json"


class ActiveServing(BaseModel):
    """The engine that answers: its OpenAI-compatible base URL, the model spec it serves (pinned to a version, e.g.
    `llm-twin:v0004`), that version, its LocalService name and port, and since when (UTC, ISO 8601)."""

    base_url: str
    model_spec: str
    version: str | None = None
    service_name: str
    port: int
    since: str = ""


def serving_state_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / STATE_DIRNAME / STATE_FILENAME


def read_serving_state(path: Path) -> ActiveServing | None:
    """The state in `path`, None when absent or unreadable (a hand-edited, broken file counts as absent)."""
    try:
        return ActiveServing.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, ValidationError):
        return None


def active_serving(settings: Settings) -> ActiveServing | None:
    """Which engine answers for the twin now, as `switch_serving` recorded it (None: nothing was switched, the
    engine on LLM_BASE_URL serving LLM_MODEL_ID answers)."""
    return read_serving_state(serving_state_path(settings))


def write_serving_state(settings: Settings, state: ActiveServing) -> ActiveServing:
    """Replace the state file atomically (temp file + os.replace, fsynced). Fills `since` when empty."""
    if not state.since:
        state = state.model_copy(update={"since": datetime.now(UTC).isoformat(timespec="seconds")})
    path = serving_state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with temp.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(state.model_dump(), indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    return state


def clear_serving_state(settings: Settings) -> bool:
    """Remove the state file (the configured engine answers again). Returns True if there was one."""
    try:
        serving_state_path(settings).unlink()
        return True
    except FileNotFoundError:
        return False
