"""The twin refresh's ledger and lock under `DATA_DIR/refresh/`.

    refresh/
      lock          held (flock) by the running refresh: two never overlap; the kernel drops it when the holder
                    dies, so a refresh killed with -9 never blocks the next one
      holder.json   who holds the lock (pid, command, since): what a refused second refresh prints
      last.json     the corpus fingerprint of the last *completed* refresh (what "new" is measured against)
      runs.jsonl    one line per completed refresh: outcome, changes, dataset, candidate, gate, serving

Only a completed refresh writes last.json (temp file + os.replace), so a killed one is redone on the next run.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_engineering.application.jsonl import read_append_log
from llm_engineering.domain.errors import LLMTwinError


class RefreshBusyError(LLMTwinError):
    """Another refresh holds the lock."""


class RefreshLedger:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def _last(self) -> Path:
        return self.root / "last.json"

    def last_fingerprint(self, authors: list[str]) -> dict[str, str] | None:
        """The fingerprint the last completed refresh of these authors recorded (None: never refreshed)."""
        if not self._last.is_file():
            return None
        try:
            data = json.loads(self._last.read_text(encoding="utf-8"))
        except ValueError:
            return None
        entry = data.get(_authors_key(authors))
        return dict(entry["fingerprint"]) if isinstance(entry, dict) and "fingerprint" in entry else None

    def record(self, authors: list[str], fingerprint: dict[str, str], report: dict[str, Any]) -> None:
        """A completed refresh: its fingerprint becomes the baseline, its report a line of runs.jsonl."""
        self.root.mkdir(parents=True, exist_ok=True)
        at = datetime.now(UTC).isoformat(timespec="seconds")
        data: dict[str, Any] = {}
        if self._last.is_file():
            try:
                data = json.loads(self._last.read_text(encoding="utf-8"))
            except ValueError:
                data = {}
        data[_authors_key(authors)] = {"at": at, "fingerprint": fingerprint}
        temp = self._last.with_name(f".last.{uuid.uuid4().hex}.tmp")
        temp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temp, self._last)
        with (self.root / "runs.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"at": at, **report}, default=str) + "\n")

    def runs(self) -> list[dict[str, Any]]:
        return read_append_log(self.root / "runs.jsonl")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the refresh lock for the block; RefreshBusyError (naming the holder) when another refresh has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = (self.root / "lock").open("a+")
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RefreshBusyError(
                    f"another twin refresh is running ({self._holder()}); it holds {self.root / 'lock'}. "
                    "Wait for it to finish, or stop it: a killed refresh releases the lock and the next run "
                    "resumes."
                ) from None
            holder = {"pid": os.getpid(), "command": " ".join(sys.argv),
                      "since": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
            (self.root / "holder.json").write_text(json.dumps(holder) + "\n", encoding="utf-8")
            yield
        finally:
            handle.close()  # closing the descriptor releases the flock

    def _holder(self) -> str:
        try:
            holder = json.loads((self.root / "holder.json").read_text(encoding="utf-8"))
            return f"pid {holder.get('pid')}, since {holder.get('since')}: {holder.get('command')}"
        except (OSError, ValueError):
            return "holder unknown"


def _authors_key(authors: list[str]) -> str:
    return ",".join(sorted(authors)) or "all"
