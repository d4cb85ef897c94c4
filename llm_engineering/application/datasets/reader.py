"""Training input: the folders written by the `generate_datasets` pipeline, read from their JSONL files.

A dataset folder holds `instruct_train.jsonl`, `instruct_test.jsonl` (`instruction`, `answer`, `messages`,
`source_link`, `author`) and `preference_train.jsonl`, `preference_test.jsonl` (`prompt` = the chat messages
before the answer, `chosen` = the author's text, `rejected` = the base model's text, `source_link`, `author`),
plus `report.json`. Folders are versions of the datasets artifact store (`DATA_DIR/datasets/<version>/`, alias
`latest`). This is the one reader: training (`load_training_data`) and evaluation (`read_dataset_splits`) both
validate through it.

The trainers get TRL's conversational prompt/completion form: SFT `{"prompt": [system, user], "completion":
[assistant]}` (TRL masks the prompt tokens, so the loss is on the answer only), DPO `{"prompt": [...],
"chosen": [assistant], "rejected": [assistant]}` — rendered by the twin's chat template, as at serving time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from llm_engineering.application.jsonl import read_jsonl_objects
from llm_engineering.application.ports import ArtifactStore
from llm_engineering.domain.datasets import INSTRUCT_FILES, PREFERENCE_FILES, REPORT_FILE
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.prompts import TWIN_SYSTEM_PROMPT_NO_CONTEXT, Message, build_sft_messages

NO_DATASET_HINT = "run `poe run-generate-datasets` first (or pass --dataset DIR)"
ROLES = {"system", "user", "assistant"}


class DatasetInfo(BaseModel):
    """Which data a run trained on: enough to reproduce it and to show lineage."""

    path: str
    version: str
    hash: str = Field(description="sha256 over the four JSONL files (names and bytes)")
    counts: dict[str, int]
    authors: list[str]
    report: dict[str, Any] | None = None


class TrainingData(BaseModel):
    info: DatasetInfo
    sft_train: list[dict[str, Any]]
    sft_test: list[dict[str, Any]]
    dpo_train: list[dict[str, Any]]
    dpo_test: list[dict[str, Any]]


def _is_dataset_dir(path: Path) -> bool:
    return path.is_dir() and (path / INSTRUCT_FILES["train"]).is_file()


def resolve_dataset_dir(datasets: ArtifactStore, dataset: str | Path | None = None) -> Path:
    """The dataset folder to read: `dataset` if given (a folder, or a version name or alias of the datasets store),
    else the version `latest` names, else the newest."""
    if dataset is not None:
        candidate = Path(dataset).expanduser()
        if not candidate.exists():
            candidate = datasets.resolve(str(dataset)) or candidate
        if not candidate.is_dir():
            raise ConfigurationError(f"dataset folder not found: {dataset}; {NO_DATASET_HINT}")
        if not _is_dataset_dir(candidate):
            raise ConfigurationError(
                f"{candidate} is not a generated dataset folder ({INSTRUCT_FILES['train']} missing); {NO_DATASET_HINT}"
            )
        return candidate.resolve()
    found = datasets.resolve()
    if found is None:
        raise ConfigurationError(f"no generated dataset under {datasets.root}: {NO_DATASET_HINT}")
    return found.resolve()


def _check_messages(messages: Any, where: str) -> list[Message]:
    if not isinstance(messages, list) or not messages:
        raise ConfigurationError(f"{where}: expected a non-empty list of {{role, content}} messages")
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise ConfigurationError(f"{where}: every message needs a role in {sorted(ROLES)} and a string content")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def sft_example(row: dict[str, Any], where: str) -> dict[str, Any]:
    """An instruct row -> TRL prompt/completion: prompt = every turn before the last, completion = the answer."""
    if row.get("messages"):
        messages = _check_messages(row["messages"], f"{where} field 'messages'")
    elif isinstance(row.get("instruction"), str) and isinstance(row.get("answer"), str):
        messages = build_sft_messages(row["instruction"], row["answer"])
    else:
        raise ConfigurationError(f"{where}: needs 'messages' or both 'instruction' and 'answer'")
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise ConfigurationError(f"{where}: the last message must be the assistant's (non-empty) answer")
    if len(messages) < 2:
        raise ConfigurationError(f"{where}: a sample needs at least one turn before the answer")
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def _as_prompt(value: Any, where: str) -> list[Message]:
    if isinstance(value, str):  # a bare question: the twin's no-context shape
        return [
            {"role": "system", "content": TWIN_SYSTEM_PROMPT_NO_CONTEXT},
            {"role": "user", "content": value.strip()},
        ]
    messages = _check_messages(value, where)
    if messages[-1]["role"] == "assistant":
        raise ConfigurationError(f"{where}: the prompt must end before the answer (last role is 'assistant')")
    return messages


def _as_answer(value: Any, where: str) -> list[Message]:
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        text = value[0].get("content")
    else:
        text = None
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"{where}: expected a non-empty answer text")
    return [{"role": "assistant", "content": text.strip()}]


def dpo_example(row: dict[str, Any], where: str) -> dict[str, Any]:
    """A preference row -> TRL conversational preference example."""
    for key in ("prompt", "chosen", "rejected"):
        if key not in row:
            raise ConfigurationError(f"{where}: field '{key}' is missing")
    return {
        "prompt": _as_prompt(row["prompt"], f"{where} field 'prompt'"),
        "chosen": _as_answer(row["chosen"], f"{where} field 'chosen'"),
        "rejected": _as_answer(row["rejected"], f"{where} field 'rejected'"),
    }


def dataset_hash(dataset_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in (*INSTRUCT_FILES.values(), *PREFERENCE_FILES.values()):
        path = dataset_dir / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


def _convert(rows: list[dict[str, Any]], path: Path, convert) -> list[dict[str, Any]]:
    return [convert(row, f"{path} line {number}") for number, row in enumerate(rows, start=1)]


class DatasetSplits(BaseModel):
    """A dataset folder's rows as written (validated as JSON objects), its report and version."""

    path: Path
    version: str
    rows: dict[str, list[dict[str, Any]]]  # instruct_train, instruct_test, preference_train, preference_test
    report: dict[str, Any] | None = None


def read_dataset_splits(
    dataset_dir: str | Path, *, need_preference: bool = True, need_test: bool = False
) -> DatasetSplits:
    """Read a dataset folder's four splits and report.json. Errors name the file (and line) and say what to do."""
    dataset_dir = Path(dataset_dir)
    if not _is_dataset_dir(dataset_dir):
        raise ConfigurationError(f"{dataset_dir} is not a generated dataset folder; {NO_DATASET_HINT}")
    rows: dict[str, list[dict[str, Any]]] = {}
    for kind, files, needed in (("instruct", INSTRUCT_FILES, True), ("preference", PREFERENCE_FILES, need_preference)):
        for split, name in files.items():
            path = dataset_dir / name
            missing = f"{path} is missing; {NO_DATASET_HINT}" if needed and split == "train" else None
            rows[f"{kind}_{split}"] = read_jsonl_objects(path, missing)
    if not rows["instruct_train"]:
        raise ConfigurationError(f"{dataset_dir / INSTRUCT_FILES['train']} has no samples; {NO_DATASET_HINT}")
    if need_test and not rows["instruct_test"]:
        raise ConfigurationError(
            f"{dataset_dir / INSTRUCT_FILES['test']} is missing or empty: evaluation needs the held-out test split "
            f"({NO_DATASET_HINT})"
        )
    if need_preference and not rows["preference_train"]:
        raise ConfigurationError(
            f"{dataset_dir / PREFERENCE_FILES['train']} has no pairs: regenerate the datasets, "
            "or set `dpo.enabled: false` to train SFT only"
        )
    report_path = dataset_dir / REPORT_FILE
    report = None
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{report_path}: not valid JSON ({exc.msg})") from exc
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"{report_path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    report = report if isinstance(report, dict) else None
    return DatasetSplits(
        path=dataset_dir, version=str((report or {}).get("version") or dataset_dir.name), rows=rows, report=report
    )


def load_training_data(dataset_dir: str | Path, need_preference: bool = True) -> TrainingData:
    """Read and validate a dataset folder for the trainers. Errors name the file, the line and the field."""
    dataset_dir = Path(dataset_dir)
    splits = read_dataset_splits(dataset_dir, need_preference=need_preference)
    raw = splits.rows
    authors = sorted({str(r["author"]) for rows in raw.values() for r in rows if r.get("author")})
    info = DatasetInfo(
        path=str(dataset_dir.resolve()),
        version=splits.version,
        hash=dataset_hash(dataset_dir),
        counts={key: len(rows) for key, rows in raw.items()},
        authors=authors,
        report=splits.report,
    )
    return TrainingData(
        info=info,
        sft_train=_convert(raw["instruct_train"], dataset_dir / INSTRUCT_FILES["train"], sft_example),
        sft_test=_convert(raw["instruct_test"], dataset_dir / INSTRUCT_FILES["test"], sft_example),
        dpo_train=_convert(raw["preference_train"], dataset_dir / PREFERENCE_FILES["train"], dpo_example),
        dpo_test=_convert(raw["preference_test"], dataset_dir / PREFERENCE_FILES["test"], dpo_example),
    )
