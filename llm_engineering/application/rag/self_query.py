"""Rule-based self-query: find the full name of a known author in the question.

Only authors that exist in the warehouse are recognised; looking up never creates a user.
"""

from __future__ import annotations

import re
import threading
import time

from llm_engineering.application.ports import WarehouseRepository
from llm_engineering.domain.documents import normalize_full_name


class SelfQuery:
    def __init__(self, warehouse: WarehouseRepository, ttl_s: float = 60.0) -> None:
        self.warehouse = warehouse
        self.ttl_s = ttl_s
        self._names: list[str] = []
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def known_authors(self) -> list[str]:
        """Full names in the warehouse, longest first (so 'Ada King Lovelace' wins over 'Ada King')."""
        with self._lock:
            if time.monotonic() - self._loaded_at > self.ttl_s:
                names = {u.full_name for u in self.warehouse.list_users()}
                self._names = sorted(names, key=lambda n: (-len(n), n))
                self._loaded_at = time.monotonic()
            return list(self._names)

    def is_known(self, full_name: str) -> bool:
        name = normalize_full_name(full_name).casefold()
        return any(n.casefold() == name for n in self.known_authors())

    def extract_author(self, query: str) -> str | None:
        """The warehouse's spelling of the first known full name found in the query, or None."""
        text = normalize_full_name(query)
        for name in self.known_authors():
            pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, name.split())) + r"(?!\w)"
            if re.search(pattern, text, flags=re.IGNORECASE):
                return name
        return None
