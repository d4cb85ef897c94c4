"""Warehouse import/export against a real MongoDB-wire server, including the Handbook's export format."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from llm_engineering.application.warehouse.transfer import export_warehouse, import_warehouse
from llm_engineering.domain.errors import ImportFormatError
from llm_engineering.domain.types import DataCategory

HANDBOOK_FIXTURE = Path(__file__).parents[1] / "fixtures" / "handbook_export"
PROJECT_ROOT = Path(__file__).parents[2]


def _counts(warehouse) -> dict[str, int]:
    return {c.value: warehouse.count(c) for c in DataCategory}


def test_import_handbook_folder_is_idempotent(warehouse):
    first = import_warehouse(warehouse, HANDBOOK_FIXTURE, show_progress=False)
    assert first.counts["users"] == {"inserted": 2}
    assert first.counts["articles"] == {"inserted": 3}
    assert first.counts["posts"] == {"inserted": 1}
    assert first.counts["repositories"] == {"inserted": 1}

    second = import_warehouse(warehouse, HANDBOOK_FIXTURE, show_progress=False)
    assert second.counts["users"] == {"unchanged": 2}
    assert second.counts["articles"] == {"unchanged": 3}
    assert _counts(warehouse) == {"users": 2, "articles": 3, "posts": 1, "repositories": 1}

    articles = {d.link: d for d in warehouse.find_documents(DataCategory.ARTICLES)}
    substack = articles["https://gracehopper.substack.com/p/nanoseconds"]
    assert substack.platform == "substack"  # the Handbook's host-style platform is normalised
    assert substack.author_full_name == "Grace Hopper"
    assert str(substack.id) == "c0a80101-0000-4000-8000-000000000002"  # ids survive import
    assert substack.content_hash  # computed on import
    repo = warehouse.find_documents(DataCategory.REPOSITORIES)[0]
    assert repo.content["bombe/rotor.py"] == "def step(position):\n    return (position + 1) % 26\n"


def test_export_then_import_round_trips(warehouse, settings, tmp_path):
    import_warehouse(warehouse, HANDBOOK_FIXTURE, show_progress=False)
    out = tmp_path / "export"
    report = export_warehouse(warehouse, out)
    assert report.counts["articles"] == {"exported": 3}
    users = json.loads((out / "UserDocument.json").read_text())
    assert {u["first_name"] for u in users} == {"Grace", "Alan"}
    assert not list(out.glob("*.partial"))

    # Into a fresh database: same documents, same ids and hashes.
    from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse

    other = MongoWarehouse(settings=settings.model_copy(update={"mongodb_database": f"t_{uuid.uuid4().hex[:8]}"}))
    import_warehouse(other, out, show_progress=False)
    assert _counts(other) == _counts(warehouse)
    before = {d.link: (d.id, d.content_hash) for d in warehouse.find_documents(DataCategory.ARTICLES)}
    after = {d.link: (d.id, d.content_hash) for d in other.find_documents(DataCategory.ARTICLES)}
    assert before == after


def test_import_remaps_documents_to_an_existing_user_with_the_same_name(warehouse):
    existing, _ = warehouse.get_or_create_user("Grace Hopper")
    import_warehouse(warehouse, HANDBOOK_FIXTURE, show_progress=False)
    graces = [d for d in warehouse.find_documents(DataCategory.ARTICLES) if d.author_full_name == "Grace Hopper"]
    assert graces and all(d.author_id == existing.id for d in graces)
    assert warehouse.count(DataCategory.USERS) == 2


def _broken_copy(tmp_path: Path, file_name: str, mutate) -> Path:
    folder = tmp_path / "broken"
    shutil.copytree(HANDBOOK_FIXTURE, folder)
    path = folder / file_name
    path.write_text(mutate(path.read_text()))
    return folder


@pytest.mark.parametrize(
    ("file_name", "mutate", "message"),
    [
        ("ArticleDocument.json", lambda text: text[:-20], "invalid JSON"),
        ("PostDocument.json", lambda text: '{"not": "an array"}', "expected a JSON array"),
        (
            "ArticleDocument.json",
            lambda text: json.dumps([*json.loads(text)[:2], {**json.loads(text)[2], "link": None}]),
            "record #2",
        ),
        (
            "RepositoryDocument.json",
            lambda text: json.dumps([{k: v for k, v in json.loads(text)[0].items() if k != "name"}]),
            "missing field(s) `name`",
        ),
        (
            "ArticleDocument.json",
            lambda text: json.dumps([{**json.loads(text)[0], "author_id": str(uuid.uuid4())}]),
            "matches no user",
        ),
        ("UserDocument.json", lambda text: json.dumps([{"first_name": "X", "_id": "not-a-uuid"}]), "record #0"),
    ],
)
def test_malformed_file_names_file_and_record_and_writes_nothing(warehouse, tmp_path, file_name, mutate, message):
    folder = _broken_copy(tmp_path, file_name, mutate)
    with pytest.raises(ImportFormatError) as error:
        import_warehouse(warehouse, folder, show_progress=False)
    assert file_name in str(error.value)
    assert message in str(error.value)
    assert _counts(warehouse) == {"users": 0, "articles": 0, "posts": 0, "repositories": 0}


def test_an_id_already_used_under_another_link_is_refused_before_anything_is_written(warehouse, tmp_path):
    """Regression (#14): a valid folder whose record reuses an existing `_id` under a new link used to write
    a user and an article, then die with a raw DuplicateKeyError."""
    import_warehouse(warehouse, HANDBOOK_FIXTURE, show_progress=False)
    before = _counts(warehouse)
    existing = json.loads((HANDBOOK_FIXTURE / "ArticleDocument.json").read_text())[0]
    folder = tmp_path / "reuse"
    folder.mkdir()
    user = json.loads((HANDBOOK_FIXTURE / "UserDocument.json").read_text())[0]
    new_user = {**user, "_id": str(uuid.uuid4()), "first_name": "Ada", "last_name": "Lovelace"}
    shutil.copy(HANDBOOK_FIXTURE / "UserDocument.json", folder / "UserDocument.json")
    users = json.loads((folder / "UserDocument.json").read_text()) + [new_user]
    (folder / "UserDocument.json").write_text(json.dumps(users))
    fresh = {**existing, "link": "https://example.org/brand-new", "author_id": new_user["_id"]}
    (folder / "ArticleDocument.json").write_text(json.dumps([{**existing, "_id": str(uuid.uuid4())}, fresh]))
    with pytest.raises(ImportFormatError) as error:
        import_warehouse(warehouse, folder, show_progress=False)
    message = str(error.value)
    assert "ArticleDocument.json record #1" in message and existing["link"] in message and "new `_id`" in message
    assert _counts(warehouse) == before  # neither the new user nor the first article was written


def test_ids_or_links_twice_in_one_folder_are_refused(warehouse, tmp_path):
    records = json.loads((HANDBOOK_FIXTURE / "ArticleDocument.json").read_text())
    twice = _broken_copy(tmp_path, "ArticleDocument.json", lambda _: json.dumps([records[0], records[0]]))
    with pytest.raises(ImportFormatError, match=r"record #1: `_id` .* repeats record #0"):
        import_warehouse(warehouse, twice, show_progress=False)
    assert _counts(warehouse) == {"users": 0, "articles": 0, "posts": 0, "repositories": 0}


def test_warehouse_conflicts_and_outages_are_project_errors(warehouse, settings):
    from llm_engineering.domain.documents import UserDocument
    from llm_engineering.domain.errors import ConflictError, ServiceUnavailableError
    from llm_engineering.infrastructure.mongo.warehouse import MongoWarehouse

    user, _ = warehouse.get_or_create_user("Grace Hopper")
    clash = UserDocument(id=user.id, first_name="Alan", last_name="Turing")
    with pytest.raises(ConflictError, match="another record"):
        warehouse.upsert_user(clash)
    dead = settings.model_copy(update={"mongodb_uri": "mongodb://admin:s3cret@127.0.0.1:9/", "mongodb_timeout_ms": 300})
    with pytest.raises(ServiceUnavailableError) as error:
        MongoWarehouse(settings=dead).list_users()
    assert "s3cret" not in str(error.value) and "MONGODB_URI" in str(error.value)


def test_folder_without_export_files_is_rejected(warehouse, tmp_path):
    with pytest.raises(ImportFormatError, match="holds none of"):
        import_warehouse(warehouse, tmp_path, show_progress=False)


def test_import_cli_prints_counts_and_fails_cleanly_on_bad_input(settings, tmp_path):
    env = {**_env(settings)}
    ok = subprocess.run(
        [sys.executable, "-m", "tools.data_warehouse", "import", "--data-dir", str(HANDBOOK_FIXTURE)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "articles" in ok.stdout and "inserted" in ok.stdout

    folder = _broken_copy(tmp_path, "PostDocument.json", lambda text: "[1, 2")
    bad = subprocess.run(
        [sys.executable, "-m", "tools.data_warehouse", "import", "--data-dir", str(folder)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0
    assert "PostDocument.json" in bad.stderr and "Nothing was written" in bad.stderr
    assert "Traceback" not in bad.stderr


def _env(settings) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "DATA_DIR": str(settings.data_dir),
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DATABASE": settings.mongodb_database,
        "MONGODB_EMBEDDED": "false",
    }
