"""What is new in the authors' writing since the last completed refresh (pure: two fingerprints in, a diff out).

A fingerprint is `document id -> content hash`, the warehouse snapshot the feature pipeline already takes
(`WarehouseSnapshot.versions`). The refresh compares it with the fingerprint its last *completed* run recorded,
not with the vector store: a refresh killed after its features step has indexed the new documents, and the next
run must still see them as new (the feature plan would call them unchanged).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from llm_engineering.domain.types import DataCategory


class CorpusChanges(BaseModel):
    """The diff between the corpus now and the corpus the last completed refresh trained on."""

    authors: list[str] = Field(default_factory=list)
    first_run: bool = Field(default=False, description="no completed refresh recorded yet: everything is new")
    forced: bool = Field(default=False, description="--force: refresh even when nothing changed")
    new: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    unchanged: int = 0
    fingerprint: dict[str, str] = Field(default_factory=dict, description="document id -> content hash, now")

    @property
    def has_changes(self) -> bool:
        return bool(self.new or self.changed or self.removed)

    @property
    def proceed(self) -> bool:
        """Whether the refresh goes on past the features step."""
        return self.has_changes or self.forced

    def counts(self) -> dict[str, int]:
        return {"new": len(self.new), "changed": len(self.changed), "removed": len(self.removed),
                "unchanged": self.unchanged}  # fmt: skip

    def summary(self) -> str:
        if self.first_run:
            return f"first refresh: {len(self.new)} document(s) of {', '.join(self.authors) or 'all authors'}"
        if not self.has_changes:
            tail = " (--force: refreshing anyway)" if self.forced else ""
            return f"nothing new since the last refresh ({self.unchanged} document(s) unchanged){tail}"
        counts = self.counts()
        return ", ".join(f"{n} {what}" for what, n in counts.items() if n) + " document(s) since the last refresh"


def fingerprint(versions: dict[DataCategory, dict[str, str]] | dict[str, dict[str, str]]) -> dict[str, str]:
    """A snapshot's per-category versions flattened to `document id -> content hash`."""
    return {doc_id: digest for per_category in versions.values() for doc_id, digest in per_category.items()}


def corpus_changes(
    previous: dict[str, str] | None, current: dict[str, str], authors: list[str], *, force: bool = False
) -> CorpusChanges:
    """Compare the corpus now with the one the last completed refresh recorded (None: there was none)."""
    before = previous or {}
    new = sorted(d for d in current if d not in before)
    changed = sorted(d for d in current if d in before and before[d] != current[d])
    removed = sorted(d for d in before if d not in current)
    return CorpusChanges(
        authors=authors,
        first_run=previous is None,
        forced=force,
        new=new,
        changed=changed,
        removed=removed,
        unchanged=len(current) - len(new) - len(changed),
        fingerprint=dict(current),
    )
