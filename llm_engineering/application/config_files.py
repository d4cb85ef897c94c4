"""Reading a YAML run config from disk, with errors that name the file (the typed configs validate its content)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llm_engineering.domain.errors import ConfigurationError


def read_yaml_file(path: str | Path, kind: str, example: str) -> Any:
    """The parsed YAML of `path`; a missing file, non-UTF-8 bytes or invalid YAML is a ConfigurationError naming it
    (`kind` says which config, `example` which file in configs/ to start from)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"{kind} not found: {path} (see {example})")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path} is not valid YAML: {exc}") from exc
