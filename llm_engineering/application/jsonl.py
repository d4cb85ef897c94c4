"""JSON Lines files (datasets, QA sets, reference answers), read with errors that name the file and the line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm_engineering.domain.errors import ConfigurationError


def read_jsonl_objects(path: Path, missing: str | None = None) -> list[dict[str, Any]]:
    """Every non-blank line of `path` as a JSON object. A missing file is `ConfigurationError(missing)`, or no
    rows when `missing` is None (an optional file)."""
    if not path.is_file():
        if missing is None:
            return []
        raise ConfigurationError(missing)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigurationError(f"{path} line {line}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path} line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise ConfigurationError(f"{path} line {number}: expected a JSON object")
        rows.append(row)
    return rows


def read_append_log(path: Path) -> list[dict[str, Any]]:
    """The records of an append-only JSON Lines log (the registry's history, the refresh ledger), oldest first; a
    line a killed writer left half-written is skipped, a missing log has no records."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
