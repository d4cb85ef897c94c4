"""An export read as a tree of files, from a folder or a zip, with path, size and count limits.

A zip is never extracted to disk: members are read in memory, one at a time. Before anything is read the whole
listing is checked, and a zip that breaks a rule is refused with an error naming the archive and the member:
a path that leaves the archive (`../x`, `/etc/x`, `C:\\x`), a link, an encrypted member, more members or more
uncompressed bytes than the limits allow, or a compression ratio only a zip bomb reaches. A member whose
actual size exceeds what its header declared is refused while it is read (headers can lie).

Folders are walked without following links to folders; hidden files and folders (`.git`, `.obsidian`) and
operating-system debris (`__MACOSX`, `.DS_Store`) are ignored.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from llm_engineering.domain.errors import ImportFormatError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """What one export may hold. The defaults are far above any real personal export (a 10-year Medium writer's
    zip is a few MB) and far below what would exhaust a laptop."""

    max_files: int = 50_000
    max_file_bytes: int = 64 * MIB
    max_total_bytes: int = 1024 * MIB
    # Text compresses ~5-10x; a member that expands more than this (and is over 1 MiB) is a bomb, not an export.
    max_ratio: float = 200.0


DEFAULT_LIMITS = ArchiveLimits()
_JUNK = re.compile(r"(^|/)(__MACOSX|\.DS_Store|Thumbs\.db)(/|$)")


def _is_hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


class ArchiveTree(ABC):
    """Files of an export by relative POSIX path ('posts/a.html'), read as bytes or text."""

    location: str  # the folder or zip, as errors name it

    @abstractmethod
    def files(self) -> list[str]:
        """Every file's relative path, sorted."""

    @abstractmethod
    def read_bytes(self, name: str) -> bytes: ...

    def where(self, name: str) -> str:
        """How errors and reports name a file of this tree."""
        return str(Path(self.location) / name)

    def read_text(self, name: str) -> str:
        data = self.read_bytes(name)
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportFormatError(self.where(name), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc

    def exists(self, name: str) -> bool:
        return name in set(self.files())

    def subtree(self, prefix: str) -> ArchiveTree:
        """The files under `prefix` ('' is this tree), as a tree of their own."""
        return self if not prefix.strip("/") else _SubTree(self, prefix.strip("/") + "/")


class FolderTree(ArchiveTree):
    def __init__(self, root: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> None:
        self.root = root
        self.location = str(root)
        self.limits = limits
        self._files: list[str] | None = None

    def files(self) -> list[str]:
        if self._files is None:
            found: list[str] = []
            root = self.root.resolve()
            for folder, dirs, names in os.walk(root):  # followlinks=False: a link to a folder is not entered
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
                for name in sorted(names):
                    path = Path(folder) / name
                    relative = path.relative_to(root).as_posix()
                    if _is_hidden(relative) or _JUNK.search(relative):
                        continue
                    if path.is_symlink() and not path.resolve().is_relative_to(root):
                        continue  # a link out of the folder: not part of this export
                    found.append(relative)
                    if len(found) > self.limits.max_files:
                        raise ImportFormatError(
                            self.location, f"holds more than {self.limits.max_files} files (the import's limit)"
                        )
            self._files = sorted(found)
        return self._files

    def read_bytes(self, name: str) -> bytes:
        path = self.root / name
        try:
            size = path.stat().st_size
            if size > self.limits.max_file_bytes:
                raise ImportFormatError(
                    self.where(name), f"{size} bytes, over the {self.limits.max_file_bytes}-byte limit per file"
                )
            return path.read_bytes()
        except OSError as exc:
            raise ImportFormatError(self.where(name), f"cannot be read ({exc.strerror or exc})") from exc


class ZipTree(ArchiveTree):
    """A zip read in memory, member by member, after its listing passed every check."""

    def __init__(self, path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.location = str(path)
        self.limits = limits
        try:
            self._zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise ImportFormatError(str(path), f"not a valid zip file ({exc})") from exc
        except OSError as exc:
            raise ImportFormatError(str(path), f"cannot be read ({exc.strerror or exc})") from exc
        try:
            self._members = self._check_listing()
        except ImportFormatError:
            self._zip.close()
            raise

    def where(self, name: str) -> str:
        return f"{self.location}!{name}"

    def _check_listing(self) -> dict[str, zipfile.ZipInfo]:
        infos = self._zip.infolist()
        limits = self.limits
        if len(infos) > limits.max_files:
            raise ImportFormatError(self.location, f"holds {len(infos)} members, over the limit of {limits.max_files}")
        members: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = info.filename
            parts = re.split(r"[\\/]", name)
            if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise ImportFormatError(self.where(name), "unsafe path: a member may not leave the archive")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ImportFormatError(self.where(name), "a symbolic link: exports hold files only")
            if info.flag_bits & 0x1:
                raise ImportFormatError(self.where(name), "encrypted: export the data again without a password")
            if info.is_dir():
                continue
            if info.file_size > limits.max_file_bytes:
                raise ImportFormatError(
                    self.where(name),
                    f"expands to {info.file_size} bytes, over the {limits.max_file_bytes}-byte limit per file",
                )
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > MIB and ratio > limits.max_ratio:
                raise ImportFormatError(
                    self.where(name), f"compression ratio {ratio:.0f}:1 (over {limits.max_ratio:.0f}:1): a zip bomb?"
                )
            total += info.file_size
            if total > limits.max_total_bytes:
                raise ImportFormatError(
                    self.location, f"expands to more than {limits.max_total_bytes} bytes (the import's limit)"
                )
            relative = PurePosixPath(name.replace("\\", "/")).as_posix()
            if _is_hidden(relative) or _JUNK.search(relative):
                continue
            members[relative] = info
        return members

    def files(self) -> list[str]:
        return sorted(self._members)

    def read_bytes(self, name: str) -> bytes:
        info = self._members.get(name)
        if info is None:
            raise ImportFormatError(self.where(name), "no such file in the archive")
        try:
            with self._zip.open(info) as member:
                data = member.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # CRC errors, truncated data
            raise ImportFormatError(self.where(name), f"corrupt member ({exc})") from exc
        if len(data) > info.file_size:
            raise ImportFormatError(self.where(name), "holds more data than its header declares: a zip bomb?")
        return data

    def close(self) -> None:
        self._zip.close()


class _SubTree(ArchiveTree):
    def __init__(self, parent: ArchiveTree, prefix: str) -> None:
        self.parent = parent
        self.prefix = prefix
        self.location = parent.where(prefix.rstrip("/"))

    def files(self) -> list[str]:
        return [f[len(self.prefix) :] for f in self.parent.files() if f.startswith(self.prefix)]

    def read_bytes(self, name: str) -> bytes:
        return self.parent.read_bytes(self.prefix + name)

    def where(self, name: str) -> str:
        return self.parent.where(self.prefix + name)


class SingleFileTree(ArchiveTree):
    """One file (a feed, a note) as a tree of one."""

    def __init__(self, path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> None:
        self.folder = FolderTree(path.parent, limits)
        self.name = path.name
        self.location = str(path.parent)

    def files(self) -> list[str]:
        return [self.name]

    def read_bytes(self, name: str) -> bytes:
        return self.folder.read_bytes(name)


def open_tree(path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> ArchiveTree:
    """A folder, a zip (by its signature, whatever its name) or a single file, as a tree."""
    if path.is_dir():
        return FolderTree(path, limits)
    if not path.exists():
        raise ImportFormatError(str(path), "no such file or folder")
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        return ZipTree(path, limits)
    return SingleFileTree(path, limits)
