"""Page furniture removed by evidence: short lines that repeat across many documents of the same site (a share
widget, "SubscribeSign in", "Ready for more?", the site's domain alone on a line) are not the author's words.

No phrase list: what is removed is learned from the corpus itself, per site, so a new platform's widget goes
the same way, and a line the author wrote once is never touched. Pure: strings in, strings out.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from llm_engineering.domain.chunks import CleanedDocument
from llm_engineering.domain.types import DataCategory

MAX_LINE_CHARS = 120  # furniture is short; a paragraph that repeats is quoted text, not a widget
MIN_DOCUMENTS = 3  # a site needs this many documents before anything counts as evidence
MIN_SHARE = 0.5  # ... and a line must appear in at least this share of them
_FENCE = re.compile(r"^\s*(```|~~~)")
_SPACE = re.compile(r"\s+")


def site_of(link: str) -> str:
    """The site a document comes from: its host without `www.` (empty for a link without one)."""
    host = urlsplit(link or "").hostname or ""
    return host.removeprefix("www.")


def line_key(line: str) -> str:
    return _SPACE.sub(" ", line).strip().casefold()


def candidate_lines(text: str) -> set[str]:
    """The normalised short lines of a text outside fenced code (headings are the author's structure: kept)."""
    keys: set[str] = set()
    in_code = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        key = line_key(line)
        if in_code or not key or len(key) > MAX_LINE_CHARS or key.startswith("#"):
            continue
        keys.add(key)
    return keys


@dataclass
class BoilerplateEvidence:
    """Per site: how many documents were seen, and the lines that repeat in enough of them to be furniture."""

    documents: dict[str, int] = field(default_factory=dict)
    lines: dict[str, dict[str, int]] = field(default_factory=dict)  # site -> line -> documents holding it

    def is_boilerplate(self, site: str, line: str) -> bool:
        return line_key(line) in self.lines.get(site, {})

    def strip(self, text: str, link: str) -> str:
        """`text` without the site's furniture lines (fenced code untouched)."""
        site = site_of(link)
        furniture = self.lines.get(site)
        if not furniture:
            return text
        out: list[str] = []
        in_code = False
        for line in text.split("\n"):
            if _FENCE.match(line):
                in_code = not in_code
            elif not in_code and line_key(line) in furniture:
                continue
            out.append(line)
        return "\n".join(out)

    def summary(self) -> dict[str, dict[str, int]]:
        """Per site: documents seen and furniture lines learned (for reports and logs)."""
        return {site: {"documents": n, "lines": len(self.lines.get(site, {}))} for site, n in self.documents.items()}


def learn_boilerplate(
    documents: Iterable[tuple[str, str]], min_documents: int = MIN_DOCUMENTS, min_share: float = MIN_SHARE
) -> BoilerplateEvidence:
    """Evidence from (link, text) pairs: per site, the short lines found in at least `min_share` of its documents
    (and in at least `min_documents` of them)."""
    seen: Counter[str] = Counter()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for link, text in documents:
        site = site_of(link)
        if not site:
            continue
        seen[site] += 1
        counts[site].update(candidate_lines(text))
    evidence = BoilerplateEvidence(documents=dict(seen))
    for site, total in seen.items():
        if total < min_documents:
            continue
        needed = max(min_documents, math.ceil(min_share * total))
        repeated = {line: n for line, n in counts[site].items() if n >= needed}
        if repeated:
            evidence.lines[site] = repeated
    return evidence


_MANY_BLANK_LINES = re.compile(r"\n{3,}")


def remove_boilerplate(documents: list[CleanedDocument]) -> tuple[list[CleanedDocument], BoilerplateEvidence]:
    """Learn the furniture from these cleaned documents (prose only: code is never furniture) and remove it."""
    prose = [d for d in documents if d.category != DataCategory.REPOSITORIES]
    evidence = learn_boilerplate((d.link, d.text) for d in prose)
    if not evidence.lines:
        return documents, evidence
    kept = []
    for document in documents:
        if document.category == DataCategory.REPOSITORIES:
            kept.append(document)
            continue
        text = _MANY_BLANK_LINES.sub("\n\n", evidence.strip(document.text, document.link)).strip()
        kept.append(document if text == document.text else document.model_copy(update={"text": text}))
    return kept, evidence
