"""Export the warehouse to a folder of JSON files and import such a folder back.

One format serves both ways and is the LLM-Engineers-Handbook export format: a folder with
`UserDocument.json`, `ArticleDocument.json`, `PostDocument.json` and `RepositoryDocument.json`, each a JSON
array of records with a uuid-string `_id`. Our exports add `content_hash`, `crawled_at` and `full_name`;
Handbook files without them import fine.

Import validates every file completely before writing anything, so a malformed file leaves the warehouse
untouched, and it upserts by full name (users) and by link (documents), so a second import adds nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

from loguru import logger
from pydantic import BaseModel, Field, ValidationError
from tqdm.auto import tqdm

from llm_engineering.application.ports import WarehouseRepository
from llm_engineering.application.tables import format_table
from llm_engineering.domain.documents import DOCUMENT_CLASSES, RawDocument, UserDocument
from llm_engineering.domain.errors import ImportFormatError
from llm_engineering.domain.types import DOCUMENT_CATEGORIES, DataCategory, Platform

FILE_NAMES: dict[DataCategory, str] = {
    DataCategory.USERS: "UserDocument.json",
    DataCategory.ARTICLES: "ArticleDocument.json",
    DataCategory.POSTS: "PostDocument.json",
    DataCategory.REPOSITORIES: "RepositoryDocument.json",
}


class TransferReport(BaseModel):
    """Counts per collection: for import, per outcome (inserted / updated / unchanged); for export, records."""

    directory: str
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)

    def summary_table(self) -> str:
        columns = sorted({key for counts in self.counts.values() for key in counts})
        rows = [[name, *(counts.get(c, 0) for c in columns)] for name, counts in self.counts.items()]
        return format_table(["collection", *columns], rows)


def export_warehouse(warehouse: WarehouseRepository, directory: Path) -> TransferReport:
    """Write every collection to `directory/<Kind>Document.json` (written to a temp name, then renamed)."""
    directory.mkdir(parents=True, exist_ok=True)
    report = TransferReport(directory=str(directory))
    for category, file_name in FILE_NAMES.items():
        records = list(warehouse.export_records(category))
        if category is DataCategory.USERS:
            records = [_user_export_record(r) for r in records]
        target = directory / file_name
        partial = target.with_suffix(".json.partial")
        partial.write_text(json.dumps(records, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        partial.replace(target)
        report.counts[category.value] = {"exported": len(records)}
        logger.info(f"Exported {len(records)} {category.value} to {target}")
    return report


def _user_export_record(record: dict[str, Any]) -> dict[str, Any]:
    # Handbook readers expect first_name/last_name/_id; full_name and created_at ride along.
    return {
        "_id": record["_id"],
        "first_name": record.get("first_name", ""),
        "last_name": record.get("last_name", ""),
        **{k: v for k, v in record.items() if k not in {"_id", "first_name", "last_name"}},
    }


def _read_array(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ImportFormatError(str(path), f"not UTF-8 text ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ImportFormatError(str(path), f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    if not isinstance(data, list):
        raise ImportFormatError(str(path), f"expected a JSON array of records, found a JSON {type(data).__name__}")
    return data


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        location = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def _parse_user(path: Path, index: int, record: Any) -> UserDocument:
    if not isinstance(record, dict):
        raise ImportFormatError(str(path), f"expected an object, found {type(record).__name__}", index)
    if "_id" not in record:
        raise ImportFormatError(str(path), "missing `_id`", index)
    data = {k: v for k, v in record.items() if k not in {"_id", "full_name"}}
    try:
        return UserDocument.model_validate({**data, "id": record["_id"]})
    except ValidationError as exc:
        raise ImportFormatError(str(path), _describe(exc), index) from exc


def _parse_document(category: DataCategory, path: Path, index: int, record: Any) -> RawDocument:
    if not isinstance(record, dict):
        raise ImportFormatError(str(path), f"expected an object, found {type(record).__name__}", index)
    missing = [
        key for key in ("_id", "content", "platform", "author_id", "author_full_name", "link") if key not in record
    ]
    if category is DataCategory.REPOSITORIES and "name" not in record:
        missing.append("name")
    if missing:
        raise ImportFormatError(str(path), f"missing field(s) {', '.join(f'`{m}`' for m in missing)}", index)
    if not isinstance(record["content"], dict):
        raise ImportFormatError(str(path), "`content` must be an object", index)
    if category is DataCategory.ARTICLES and not isinstance(record["content"].get("Content"), str):
        raise ImportFormatError(str(path), "article `content` needs a `Content` text", index)
    data = {k: v for k, v in record.items() if k != "_id"}
    data["id"] = record["_id"]
    data["platform"] = Platform.normalize(str(record["platform"])).value
    try:
        return DOCUMENT_CLASSES[category].model_validate(data)
    except ValidationError as exc:
        raise ImportFormatError(str(path), _describe(exc), index) from exc


def load_export_folder(directory: Path) -> tuple[list[UserDocument], dict[DataCategory, list[RawDocument]]]:
    """Parse and validate a whole export folder without touching the warehouse."""
    if not directory.is_dir():
        raise ImportFormatError(str(directory), "not a folder (expected a folder of <Kind>Document.json files)")
    present = {category: directory / name for category, name in FILE_NAMES.items() if (directory / name).is_file()}
    if not present:
        raise ImportFormatError(str(directory), f"holds none of {', '.join(FILE_NAMES.values())}")
    for stray in sorted(set(directory.glob("*.json")) - set(present.values())):
        logger.warning(f"Ignoring {stray}: not one of {', '.join(FILE_NAMES.values())}")

    users: list[UserDocument] = []
    if DataCategory.USERS in present:
        path = present[DataCategory.USERS]
        users = [_parse_user(path, i, r) for i, r in enumerate(_read_array(path))]
    documents: dict[DataCategory, list[RawDocument]] = {}
    for category in DOCUMENT_CATEGORIES:
        if category in present:
            path = present[category]
            documents[category] = [_parse_document(category, path, i, r) for i, r in enumerate(_read_array(path))]
    return users, documents


def import_warehouse(warehouse: WarehouseRepository, directory: Path, show_progress: bool = True) -> TransferReport:
    """Import a folder (this project's or the Handbook's export). Idempotent; validates before writing."""
    users, documents = load_export_folder(directory)

    # Every document must belong to a user of the folder or of the warehouse. Users already in the warehouse
    # under the same full name keep their id; documents are re-pointed at it.
    existing_by_name = {u.full_name: u for u in warehouse.list_users()}
    user_ids = {u.id for u in existing_by_name.values()}
    remap: dict[UUID, UUID] = {}
    for user in users:
        known = existing_by_name.get(user.full_name)
        remap[user.id] = known.id if known else user.id
        user_ids.add(user.id)
    for category, docs in documents.items():
        path = directory / FILE_NAMES[category]
        for index, doc in enumerate(docs):
            if doc.author_id not in user_ids and doc.author_id not in remap:
                known = existing_by_name.get(doc.author_full_name)
                if known is None:
                    raise ImportFormatError(
                        str(path),
                        f"author_id {doc.author_id} ({doc.author_full_name!r}) matches no user in "
                        f"{FILE_NAMES[DataCategory.USERS]} or in the warehouse",
                        index,
                    )
                remap[doc.author_id] = known.id

    _check_ids(warehouse, directory, users, documents)

    report = TransferReport(directory=str(directory))
    user_counts: Counter[str] = Counter()
    for user in users:
        user_counts[warehouse.upsert_user(user).value] += 1
    report.counts[DataCategory.USERS.value] = dict(user_counts)
    for category, docs in documents.items():
        counts: Counter[str] = Counter()
        for doc in tqdm(docs, desc=f"Importing {category.value}", unit="doc", disable=not show_progress):
            if doc.author_id in remap and remap[doc.author_id] != doc.author_id:
                doc = doc.model_copy(update={"author_id": remap[doc.author_id]})
            counts[warehouse.upsert_document(doc).value] += 1
        report.counts[category.value] = dict(counts)
    return report


def _check_ids(
    warehouse: WarehouseRepository,
    directory: Path,
    users: list[UserDocument],
    documents: dict[DataCategory, list[RawDocument]],
) -> None:
    """Before anything is written: no id or link twice in the folder, and no id that the warehouse already
    uses for another record (another link, another user). Otherwise the import would stop half-way."""
    users_path = str(directory / FILE_NAMES[DataCategory.USERS])
    seen_users: dict[UUID, int] = {}
    for index, user in enumerate(users):
        if user.id in seen_users:
            raise ImportFormatError(users_path, f"`_id` {user.id} repeats record #{seen_users[user.id]}", index)
        seen_users[user.id] = index
    taken_names = warehouse.user_names(seen_users)
    for index, user in enumerate(users):
        name = taken_names.get(str(user.id))
        if name is not None and name != user.full_name:
            raise ImportFormatError(
                users_path,
                f"`_id` {user.id} already belongs to user {name!r} in the warehouse; give it a new id",
                index,
            )
    for category, docs in documents.items():
        path = str(directory / FILE_NAMES[category])
        ids: dict[UUID, int] = {}
        links: dict[str, int] = {}
        for index, doc in enumerate(docs):
            if doc.id in ids:
                raise ImportFormatError(path, f"`_id` {doc.id} repeats record #{ids[doc.id]}", index)
            if doc.link in links:
                raise ImportFormatError(path, f"link {doc.link} repeats record #{links[doc.link]}", index)
            ids[doc.id], links[doc.link] = index, index
        taken = warehouse.document_links(category, ids)
        for index, doc in enumerate(docs):
            link = taken.get(str(doc.id))
            if link is not None and link != doc.link:
                raise ImportFormatError(
                    path,
                    f"`_id` {doc.id} is already used in the warehouse by {link}; give this record ({doc.link}) "
                    "a new `_id`",
                    index,
                )
