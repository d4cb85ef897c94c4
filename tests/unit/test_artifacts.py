"""The versioned-artifact store shared by datasets, the model registry, reports and vector-store versions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.infrastructure.artifacts import VersionedArtifactStore


def _complete(path: Path) -> bool:
    return (path / "done.txt").is_file()


def _fill(text: str):
    def fill(folder: Path, version: str) -> None:
        (folder / "payload.txt").write_text(f"{text} {version}")
        (folder / "done.txt").write_text("ok")

    return fill


def test_versions_appear_whole_with_latest_and_sequence_names(tmp_path: Path) -> None:
    store = VersionedArtifactStore(tmp_path / "models", is_complete=_complete, kind="model")
    first = store.write(_fill("one"))
    second = store.write(_fill("two"))
    assert (first.name, second.name) == ("v0001", "v0002")
    assert store.versions() == ["v0001", "v0002"] and store.latest() == "v0002"
    assert (second / "payload.txt").read_text() == "two v0002"  # the version name is known while filling
    assert store.resolve() == second and store.resolve("v0001") == first and store.resolve("nope") is None
    assert not [p for p in store.root.iterdir() if p.name.startswith(".")]


def test_a_failed_write_leaves_no_version_and_keeps_latest(tmp_path: Path) -> None:
    store = VersionedArtifactStore(tmp_path / "d", naming="timestamp", is_complete=_complete)
    kept = store.write(_fill("good"))

    def broken(folder: Path, version: str) -> None:
        (folder / "done.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        store.write(broken)
    assert store.versions() == [kept.name] and store.latest() == kept.name
    assert sorted(p.name for p in store.root.iterdir()) == sorted([kept.name, "latest"])


def test_aliases_are_atomic_text_files_and_name_only_complete_versions(tmp_path: Path) -> None:
    store = VersionedArtifactStore(tmp_path / "m", is_complete=_complete, kind="model")
    store.write(_fill("a"))
    store.write(_fill("b"))
    store.set_alias("production", "v0001")
    assert (store.root / "production").read_text() == "v0001\n" and store.read_alias("production") == "v0001"
    with pytest.raises(ConfigurationError, match="v0009 is not a complete version"):
        store.set_alias("production", "v0009")
    (store.root / "v0003").mkdir()  # an incomplete folder is no version
    assert store.versions() == ["v0001", "v0002"] and store.next_version() == "v0004"
    (store.root / "staging").symlink_to(store.root / "v0002")  # older trees used symlinks: still read
    assert store.read_alias("staging") == "v0002"


def test_prune_keeps_the_newest_and_every_aliased_version_and_clears_stale_staging(tmp_path: Path) -> None:
    store = VersionedArtifactStore(tmp_path / "m", is_complete=_complete)
    for text in "abcde":
        store.write(_fill(text))
    store.set_alias("production", "v0001")
    stale = store.root / ".staging-123-abc"
    stale.mkdir()
    os.utime(stale, (0, 0))  # a killed writer's leftover, long ago
    assert store.prune(keep=2) == ["v0002", "v0003"]
    assert store.versions() == ["v0001", "v0004", "v0005"] and not stale.exists()
    with pytest.raises(ConfigurationError, match="keep at least one"):
        store.prune(keep=0)


def test_write_to_an_outside_folder_replaces_only_an_artifact_of_the_same_kind(tmp_path: Path) -> None:
    store = VersionedArtifactStore(tmp_path / "datasets", naming="timestamp", is_complete=_complete, kind="dataset")
    target = tmp_path / "mine"
    store.write_to(target, _fill("first"))
    store.write_to(target, _fill("second"))
    assert (target / "payload.txt").read_text() == "second mine" and store.versions() == []
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="notes exists and is not a dataset folder"):
        store.write_to(other, _fill("x"))
    assert (other / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_aliases_may_live_beside_the_versions_folder(tmp_path: Path) -> None:
    """The vector store's layout: ROOT/CURRENT names ROOT/versions/v000001."""
    store = VersionedArtifactStore(tmp_path / "versions", width=6, durable=True, alias_dir=tmp_path)
    version = store.write(lambda folder, name: (folder / "x").write_text(name), alias="CURRENT")
    assert version.name == "v000001" and (tmp_path / "CURRENT").read_text() == "v000001\n"
    assert store.read_alias("CURRENT") == "v000001"
