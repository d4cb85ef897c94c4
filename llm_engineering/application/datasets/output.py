"""The files of one dataset version (JSONL splits, HF DatasetDicts, report.json). Where they go — a new version
of `DATA_DIR/datasets` with an atomic `latest`, or a user's `--output` folder — is the artifact store's job."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llm_engineering.domain.datasets import (
    INSTRUCT_DATASET_DIR,
    INSTRUCT_FILES,
    PREFERENCE_DATASET_DIR,
    PREFERENCE_FILES,
    REPORT_FILE,
)


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


def write_dataset_files(
    folder: Path,
    instruct: dict[str, list[dict[str, Any]]],
    preference: dict[str, list[dict[str, Any]]],
    report: dict[str, Any],
    hf_datasets: bool = True,
) -> None:
    """The JSONL files, the HF DatasetDicts and report.json of one dataset version, into `folder` (a staging
    folder of the artifact store, which makes the version appear whole or not at all)."""
    for split, name in INSTRUCT_FILES.items():
        write_jsonl(folder / name, instruct.get(split, []))
    for split, name in PREFERENCE_FILES.items():
        write_jsonl(folder / name, preference.get(split, []))
    if hf_datasets:
        _save_hf(folder / INSTRUCT_DATASET_DIR, instruct)
        _save_hf(folder / PREFERENCE_DATASET_DIR, preference)
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
