"""Writing a dataset folder so that it appears complete or not at all: everything goes to a hidden temporary
folder next to the target, which is renamed into place at the end; `latest` is replaced atomically."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_engineering.domain.datasets import (
    INSTRUCT_DATASET_DIR,
    INSTRUCT_FILES,
    LATEST_POINTER,
    PREFERENCE_DATASET_DIR,
    PREFERENCE_FILES,
    REPORT_FILE,
)
from llm_engineering.domain.errors import ConfigurationError


def new_version_dir(root: Path, now: datetime | None = None) -> Path:
    """root/<UTC timestamp>, sortable by name (training takes the newest); a suffix when the name is taken."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    candidate, number = root / stamp, 1
    while candidate.exists():
        number += 1
        candidate = root / f"{stamp}-{number}"
    return candidate


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _save_hf(path: Path, splits: dict[str, list[dict[str, Any]]]) -> None:
    from datasets import Dataset, DatasetDict, disable_progress_bars  # heavy (pyarrow): only when writing

    disable_progress_bars()
    built = {name: Dataset.from_list(rows) for name, rows in splits.items() if rows}
    features = next(iter(built.values())).features if built else None
    for name, rows in splits.items():
        if not rows:  # an empty split keeps the columns of the others
            built[name] = Dataset.from_list([], features=features)
    DatasetDict({name: built[name] for name in splits}).save_to_disk(str(path))


def write_dataset_folder(
    target: Path,
    instruct: dict[str, list[dict[str, Any]]],
    preference: dict[str, list[dict[str, Any]]],
    report: dict[str, Any],
    hf_datasets: bool = True,
) -> Path:
    """Write the JSONL files, the HF DatasetDicts and report.json into `target`, all or nothing.

    An existing `target` is replaced only when it is a dataset folder (it holds report.json) or empty."""
    target = Path(target)
    if target.exists() and any(target.iterdir()) and not (target / REPORT_FILE).is_file():
        raise ConfigurationError(f"{target} exists and is not a dataset folder: choose another --output")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        for split, name in INSTRUCT_FILES.items():
            write_jsonl(temporary / name, instruct.get(split, []))
        for split, name in PREFERENCE_FILES.items():
            write_jsonl(temporary / name, preference.get(split, []))
        if hf_datasets:
            _save_hf(temporary / INSTRUCT_DATASET_DIR, instruct)
            _save_hf(temporary / PREFERENCE_DATASET_DIR, preference)
        (temporary / REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
        _replace_dir(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


def _replace_dir(source: Path, target: Path) -> None:
    if not target.exists():
        source.rename(target)
        return
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    target.rename(old)
    source.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def point_latest(root: Path, version_dir: Path) -> Path:
    """root/latest names the newest version (a one-line text file, replaced atomically)."""
    pointer = root / LATEST_POINTER
    temporary = root / f".{LATEST_POINTER}.tmp-{os.getpid()}"
    temporary.write_text(version_dir.name + "\n", encoding="utf-8")
    os.replace(temporary, pointer)
    return pointer
