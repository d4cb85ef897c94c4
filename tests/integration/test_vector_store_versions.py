"""The versioned folder behind the embedded store's serve-while-ingesting: pointer, copies, locks, garbage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_engineering.domain.errors import ServiceUnavailableError
from llm_engineering.infrastructure.qdrant.versions import READERS, WORK, VersionedFolder, copy_file_sparse

PROJECT_ROOT = Path(__file__).parents[2]


def _publish(folder: VersionedFolder, content: str) -> str:
    work = folder.checkout(WORK, folder.current())
    (work.path / "data.txt").write_text(content)
    return folder.publish(work)


def test_publish_switches_the_pointer_and_copies_are_private(tmp_path):
    folder = VersionedFolder(tmp_path / "store")
    assert folder.current() is None
    with pytest.raises(RuntimeError, match="writer lock"):
        folder.publish(folder.checkout(WORK, None))
    folder.acquire_writer()
    assert _publish(folder, "one") == "v000001" and folder.current() == "v000001"
    reader = folder.checkout(READERS, "v000001")
    assert (reader.path / "data.txt").read_text() == "one"
    assert not (reader.path / ".pin").exists() and (reader.path / ".owner").exists()
    (reader.path / "data.txt").write_text("scribbled")  # a reader's engine writes into its copy, never the source
    assert (folder.version_path("v000001") / "data.txt").read_text() == "one"
    assert _publish(folder, "two") == "v000002" and folder.current() == "v000002"
    assert (folder.version_path("v000002") / "data.txt").read_text() == "two"
    assert not (folder.version_path("v000002") / ".owner").exists()
    reader.release()
    assert not reader.path.exists()
    folder.release_writer()


def test_one_writer_at_a_time_and_the_error_names_it(tmp_path):
    root = tmp_path / "store"
    code = (
        "import sys, time; from llm_engineering.infrastructure.qdrant.versions import VersionedFolder; "
        f"f = VersionedFolder({str(root)!r}); f.acquire_writer(); print('ready', flush=True); time.sleep(60)"
    )
    other = subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        with pytest.raises(ServiceUnavailableError) as error:
            VersionedFolder(root).acquire_writer()
        message = str(error.value)
        assert f"pid {other.pid}" in message and str(root) in message and "QDRANT_URL" in message
        assert f"{sys.executable} -c import sys" in message  # the other process's command line
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    VersionedFolder(root).acquire_writer()  # the kernel released the dead writer's lock


def test_garbage_collection_keeps_current_previous_and_pinned_versions_and_live_copies(tmp_path):
    folder = VersionedFolder(tmp_path / "store", grace_s=60)
    folder.acquire_writer()
    for n in range(4):
        _publish(folder, f"v{n}")
    live = folder.checkout(READERS, "v000004")
    # A copy whose process died mid-way: its .owner lock is free.
    dead = tmp_path / "store" / READERS / "12345-v000003-dead"
    dead.mkdir()
    (dead / ".owner").touch()
    pinned = os.open(folder.version_path("v000001") / ".pin", os.O_RDONLY)
    import fcntl

    fcntl.flock(pinned, fcntl.LOCK_SH)  # a reader copying v000001 right now
    removed = {p.name for p in folder.collect_garbage()}
    assert removed == {"12345-v000003-dead", "v000002"}
    assert {p.name for p in (tmp_path / "store" / "versions").iterdir()} == {"v000001", "v000003", "v000004"}
    assert live.path.exists()
    os.close(pinned)
    old = time.time() - 120  # the current version has been published for longer than the grace period
    os.utime(folder.pointer, (old, old))
    assert {p.name for p in folder.collect_garbage()} == {"v000001", "v000003"}
    live.release()


def test_checkout_follows_the_pointer_when_its_version_was_collected(tmp_path):
    folder = VersionedFolder(tmp_path / "store")
    folder.acquire_writer()
    _publish(folder, "one")
    _publish(folder, "two")
    import shutil

    shutil.rmtree(folder.version_path("v000001"))
    copy = folder.checkout(READERS, "v000001")
    assert copy.version == "v000002" and (copy.path / "data.txt").read_text() == "two"


def test_sparse_copy_keeps_content_and_holes(tmp_path):
    src = tmp_path / "sparse.bin"
    with open(src, "wb") as fh:
        fh.write(b"head")
        fh.seek(64 << 20)
        fh.write(b"tail")
    dst = tmp_path / "copy.bin"
    copy_file_sparse(src, dst)
    assert dst.stat().st_size == src.stat().st_size
    with open(dst, "rb") as fh:
        assert fh.read(4) == b"head"
        fh.seek(64 << 20)
        assert fh.read() == b"tail"
    assert dst.stat().st_blocks * 512 < 8 << 20  # the 64 MB hole stayed a hole
