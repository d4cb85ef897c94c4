"""The one versioned-artifact store: `<root>/<version>/` folders written whole or not at all, and alias files.

Datasets (`DATA_DIR/datasets`), the model registry (`DATA_DIR/models/<name>`), evaluation reports
(`DATA_DIR/reports`) and the embedded vector store's published versions (`DATA_DIR/qdrant-edge/versions`) all
keep their versions here:

    ROOT/
      latest                 an alias: a one-line text file naming a version, replaced atomically (os.replace)
      production             (any other alias, same format; the vector store's is `CURRENT`)
      <version>/             complete, never modified in place (v0003, 20261207-101500, v000007, eval-…)
      .staging-<id>/         a version being written; renamed into place in one step when complete

A reader therefore sees a version whole or not at all, and a run killed at any point leaves at most a
`.staging-*` folder, which the next `prune()` (or a writer's `collect_staging()`) removes. Aliases are plain
text so a tree can be copied anywhere; a symlink alias (older trees) is still read.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from llm_engineering.domain.errors import ConfigurationError

STAGING_PREFIX = ".staging-"
LATEST = "latest"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VersionedArtifactStore:
    """Versions of one kind of artifact under `root`.

    `naming="sequence"`: `{prefix}{n:0{width}d}` (v0001, v0002 …); `naming="timestamp"`: UTC `%Y%m%d-%H%M%S`
    (+ `-2`, `-3` on a clash). `is_complete(path)` says whether a folder is a finished version of this kind
    (default: any folder with a version-shaped name); `kind` names it in errors ("dataset", "model").
    `durable=True` fsyncs renames and alias writes (the vector store, whose readers are other processes)."""

    def __init__(
        self,
        root: str | Path,
        *,
        naming: Literal["sequence", "timestamp"] = "sequence",
        prefix: str = "v",
        width: int = 4,
        is_complete: Callable[[Path], bool] | None = None,
        durable: bool = False,
        kind: str = "artifact",
        alias_dir: str | Path | None = None,
    ) -> None:
        self.root = Path(root)
        self.kind = kind
        # Aliases live beside the versions unless a layout keeps them elsewhere (the vector store: ROOT/CURRENT
        # next to ROOT/versions/).
        self.alias_dir = Path(alias_dir) if alias_dir is not None else self.root
        self.naming = naming
        self.prefix = prefix
        self.width = width
        self._is_complete = is_complete or (lambda path: path.is_dir())
        self.durable = durable
        self._sequence = re.compile(rf"^{re.escape(prefix)}(\d{{{width},}})$")

    # --- versions ----------------------------------------------------------------------------------------------
    def path(self, version: str) -> Path:
        return self.root / version

    def _is_version_name(self, name: str) -> bool:
        if name.startswith(".") or not _NAME.match(name):
            return False
        return bool(self._sequence.match(name)) if self.naming == "sequence" else True

    def _sort_key(self, name: str) -> tuple[int, str]:
        match = self._sequence.match(name)
        return (int(match.group(1)), name) if match else (0, name)

    def versions(self) -> list[str]:
        """Complete versions, oldest first."""
        if not self.root.is_dir():
            return []
        found = [
            entry.name
            for entry in os.scandir(self.root)
            if entry.is_dir() and self._is_version_name(entry.name) and self._is_complete(Path(entry.path))
        ]
        return sorted(found, key=self._sort_key)

    def next_version(self, now: datetime | None = None) -> str:
        """A free version name (the caller's rename still checks: two writers may race for it)."""
        if self.naming == "timestamp":
            stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
            candidate, number = stamp, 1
            while self.path(candidate).exists():
                number += 1
                candidate = f"{stamp}-{number}"
            return candidate
        taken = []
        if self.root.is_dir():
            taken = [int(m.group(1)) for entry in os.scandir(self.root) if (m := self._sequence.match(entry.name))]
        return f"{self.prefix}{max(taken, default=0) + 1:0{self.width}d}"

    # --- aliases -----------------------------------------------------------------------------------------------
    def read_alias(self, alias: str = LATEST) -> str | None:
        """The complete version an alias names, else None (missing alias, or it names no complete version)."""
        path = self.alias_dir / alias
        if path.is_symlink():
            name = Path(os.readlink(path)).name
        elif path.is_file():
            name = path.read_text(encoding="utf-8").strip()
        else:
            return None
        return name if name and self._is_complete(self.path(name)) else None

    def alias_age_s(self, alias: str) -> float | None:
        try:
            return time.time() - (self.alias_dir / alias).stat().st_mtime
        except FileNotFoundError:
            return None

    def set_alias(self, alias: str, version: str) -> None:
        """Point `alias` at a complete `version`, atomically (temp file + os.replace)."""
        if not _NAME.match(alias):
            raise ConfigurationError(f"invalid alias name {alias!r}")
        if not self._is_complete(self.path(version)):
            raise ConfigurationError(f"{self.root.name}:{version} is not a complete version under {self.root}")
        target = self.alias_dir / alias
        temp = self.alias_dir / f".{alias}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(version + "\n")
            if self.durable:
                handle.flush()
                os.fsync(handle.fileno())
        if target.is_symlink() or target.is_dir():
            target.unlink()
        os.replace(temp, target)
        if self.durable:
            _fsync_dir(self.alias_dir)

    def latest(self) -> str | None:
        """What `latest` names, else the newest complete version, else None."""
        versions = self.versions()
        return self.read_alias(LATEST) or (versions[-1] if versions else None)

    def resolve(self, ref: str | None = None) -> Path | None:
        """A version name or an alias (None: latest) -> its folder, or None when there is none."""
        if ref is None:
            version = self.latest()
        elif self._is_complete(self.path(ref)) and self._is_version_name(ref):
            version = ref
        else:
            version = self.read_alias(ref)
        return self.path(version) if version else None

    # --- writing -----------------------------------------------------------------------------------------------
    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A hidden folder to assemble a version in; removed if the block raises or the folder is not committed."""
        self.root.mkdir(parents=True, exist_ok=True)
        folder = self.root / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        folder.mkdir()
        try:
            yield folder
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    def commit(self, staging: Path, version: str | None = None, alias: str | None = LATEST) -> str:
        """Rename a finished staging folder into place as `version` (None: the next free name; retried on a
        race) and point `alias` at it. Returns the version."""
        for _attempt in range(20):
            name = version or self.next_version()
            try:
                os.rename(staging, self.path(name))  # atomic; fails if the name was taken meanwhile
            except OSError:
                if version is None and self.path(name).exists():
                    continue
                raise
            break
        else:  # pragma: no cover - 20 concurrent writers
            raise RuntimeError(f"could not allocate a version name under {self.root}")
        if self.durable:
            _fsync_dir(self.root)
        if alias:
            self.set_alias(alias, name)
        return name

    def write(self, fill: Callable[[Path, str], None], version: str | None = None, alias: str | None = LATEST) -> Path:
        """Write a new version: `fill(folder, version)` writes the files into a staging folder, which becomes the
        version when `fill` returns. `version` is allocated first so the files may name it."""
        name = version or self.next_version()
        with self.staging() as folder:
            fill(folder, name)
            self.commit(folder, name, alias)
        return self.path(name)

    def write_to(self, target: str | Path, fill: Callable[[Path, str], None]) -> Path:
        """Write one artifact of this kind into a folder outside the store (a user's `--output DIR`), all or
        nothing; an existing folder is replaced only when it is an artifact of this kind. Its version is its name."""
        target = Path(target)
        return write_folder_atomically(
            target, lambda folder: fill(folder, target.name), self._is_complete, kind=self.kind
        )

    def collect_staging(self, older_than_s: float = 0.0) -> list[Path]:
        """Remove staging folders and alias temp files left by killed writers (older than `older_than_s`)."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        now = time.time()
        for entry in os.scandir(self.root):
            stale = entry.name.startswith(STAGING_PREFIX) or (
                entry.name.startswith(".") and entry.name.endswith(".tmp")
            )
            if stale and now - entry.stat(follow_symlinks=False).st_mtime >= older_than_s:
                path = Path(entry.path)
                if entry.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def prune(self, keep: int, protect: tuple[str, ...] = (LATEST, "production", "staging")) -> list[str]:
        """Delete all but the newest `keep` versions, never one an alias in `protect` names; also stale staging."""
        if keep < 1:
            raise ConfigurationError("prune: keep at least one version")
        protected = {v for alias in protect if (v := self.read_alias(alias))}
        versions = self.versions()
        removed = [v for v in versions[:-keep] if v not in protected]
        for version in removed:
            shutil.rmtree(self.path(version), ignore_errors=True)
        self.collect_staging(older_than_s=3600.0)
        return removed


def write_folder_atomically(
    target: Path, fill: Callable[[Path], None], may_replace: Callable[[Path], bool], kind: str = "artifact"
) -> Path:
    """Write a folder outside any store (a user's `--output DIR`) all or nothing: `fill` writes into a hidden
    sibling that replaces `target` at the end. An existing non-empty `target` is replaced only when
    `may_replace(target)` (it is an artifact of the same kind)."""
    target = Path(target)
    if target.exists() and any(target.iterdir()) and not may_replace(target):
        raise ConfigurationError(f"{target} exists and is not a {kind} folder: choose another output folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        fill(temporary)
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            target.rename(old)
            temporary.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            temporary.rename(target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target
