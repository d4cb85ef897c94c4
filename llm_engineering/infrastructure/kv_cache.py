"""Key-value stores for `ports.KeyValueCache`: SQLite on disk (dataset generation's cache under
DATA_DIR/datasets/cache) and a dict in memory (benchmarks that must not hit a cache).

SQLite gives durable, atomic writes for free: every `put` is committed, so a killed run keeps what it generated
and a half-written entry never exists. The file is opened on first use, not when the object is built.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any


class SqliteKeyValueCache:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            connection.commit()
            self._connection = connection
        return self._connection

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        payload = json.dumps(value, ensure_ascii=False)
        with self._lock:
            db = self._db()
            db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, payload))
            db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM kv").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class MemoryKeyValueCache:
    """A dict: lives as long as the process (a benchmark run that must call the LLM every time)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> Any | None:
        value = self.data.get(key)
        return json.loads(value) if value is not None else None

    def put(self, key: str, value: Any) -> None:
        self.data[key] = json.dumps(value, ensure_ascii=False)

    def __len__(self) -> int:
        return len(self.data)

    def close(self) -> None:
        pass
