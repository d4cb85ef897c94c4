"""Rule-based self-query: find the full name of a known author in the question (implements
`ports.AuthorDirectory`).

Only authors that exist in the warehouse are recognised; looking up never creates a user.
"""

from __future__ import annotations

import re
import threading
import time

from llm_engineering.application.ports import AuthorDirectory, WarehouseRepository
from llm_engineering.domain.documents import normalize_full_name
from llm_engineering.domain.errors import UnknownAuthorError


class SelfQuery:
    def __init__(self, warehouse: WarehouseRepository, ttl_s: float = 60.0) -> None:
        self.warehouse = warehouse
        self.ttl_s = ttl_s
        self._names: list[str] = []
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def known_authors(self, fresh: bool = False) -> list[str]:
        """Full names in the warehouse, longest first (so 'Ada King Lovelace' wins over 'Ada King').

        Cached for `ttl_s`; `fresh=True` asks the warehouse now (readiness checks must see a dead warehouse)."""
        with self._lock:
            if fresh or time.monotonic() - self._loaded_at > self.ttl_s:
                names = {u.full_name for u in self.warehouse.list_users()}
                self._names = sorted(names, key=lambda n: (-len(n), n))
                self._loaded_at = time.monotonic()
            return list(self._names)

    def canonical(self, full_name: str) -> str | None:
        """The warehouse's spelling of `full_name` (case and spacing ignored), or None if unknown."""
        wanted = normalize_full_name(full_name).casefold()
        return next((n for n in self.known_authors() if n.casefold() == wanted), None)

    def is_known(self, full_name: str) -> bool:
        return self.canonical(full_name) is not None

    def extract_author(self, query: str) -> str | None:
        """The warehouse's spelling of the first known full name found in the query, or None."""
        text = normalize_full_name(query)
        for name in self.known_authors():
            pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, name.split())) + r"(?!\w)"
            if re.search(pattern, text, flags=re.IGNORECASE):
                return name
        return None


_POSSESSIVE = r"(?:['’]s?)?"  # Bergum's, Jones'


def strip_author_name(query: str, author: str) -> str:
    """The query without the author's name, once the author is the filter: every chunk searched is theirs, so
    the name carries no information about which passage answers, and its words (matched in bylines, intros,
    quotes) only add noise to the sparse and dense query. Removes the full name (any case, possessive too) and
    any capitalised part of it of ≥3 letters ("what does Marchetti say"). Returns the query unchanged when
    nothing else would be left."""
    parts = author.split()
    if not parts:
        return query
    full = r"(?<!\w)" + r"\s+".join(map(re.escape, parts)) + _POSSESSIVE + r"(?!\w)"
    text = re.sub(full, " ", query, flags=re.IGNORECASE)
    for part in parts:
        if len(part) >= 3 and part[:1].isupper():
            text = re.sub(r"(?<!\w)" + re.escape(part) + _POSSESSIVE + r"(?!\w)", " ", text)
    text = re.sub(r"\s+([,.;:?!])", r"\1", " ".join(text.split())).strip(" ,;:")
    return text if re.search(r"\w", text) else query


def resolve_author_filter(authors: AuthorDirectory, query: str, requested: str | None) -> tuple[str | None, str]:
    """The author filter for a search and how it was found: ("Name", "request" | "rule") or (None, "none").

    A requested author must exist (UnknownAuthorError lists the known ones); otherwise a known author's full
    name in the query selects them.
    """
    if requested and requested.strip():
        name = authors.canonical(requested)
        if name is None:
            raise UnknownAuthorError(requested, authors.known_authors())
        return name, "request"
    found = authors.extract_author(query)
    return (found, "rule") if found else (None, "none")
