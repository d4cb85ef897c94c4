"""Quality filters of generated instructions and preference pairs. Each is a small pure function (or index) so it
can be tested on hand-made cases; the service counts every drop with its `DropReason`."""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, Field

from llm_engineering.application.datasets.grounding import ngrams, words

# "What does the passage say ...", "According to the author ...": a question about a text nobody sees.
_META = re.compile(
    r"\b(?:the|this|that|above|given|following|provided)\s+"
    r"(?:passage|text|author|excerpt|extract|paragraph|snippet|article|writer|blog\s+post)s?\b",
    re.IGNORECASE,
)


class FilterConfig(BaseModel):
    min_instruction_words: int = Field(default=4, ge=1)
    max_instruction_words: int = Field(default=40, ge=1)
    copy_ngram: int = Field(default=6, ge=2, description="An instruction sharing this many words in a row with its "
                            "answer copies it")  # fmt: skip
    duplicate_instruction_jaccard: float = Field(default=0.8, gt=0, le=1)
    duplicate_extract_jaccard: float = Field(default=0.8, gt=0, le=1)
    roundtrip: bool = True
    roundtrip_top_k: int = Field(default=5, ge=1)
    roundtrip_author_filter: bool = True
    judge_min_score: int = Field(default=3, ge=1, le=5)
    rejected_overlap_ngram: int = Field(default=4, ge=1)
    max_rejected_overlap: float = Field(default=0.5, ge=0, le=1)


_REQUEST_VERBS = (
    "explain", "describe", "show", "give", "list", "write", "compare", "summarize", "summarise", "tell", "walk",
    "outline", "suggest", "recommend", "define", "name", "help", "share", "provide", "illustrate",
)  # fmt: skip
_LABEL = re.compile(r"^(?:(?:first|second|third|next|another)\s+)?(?:question|q)\s*\d*\s*[:.)-]\s*", re.IGNORECASE)


def clean_instruction(text: str) -> str:
    """One line, single spaces, no list marker, label ("Question 1:") or quotes around it; only the first question
    when a small model ran on after it ("How does X work? 1. It ... What is Y?")."""
    text = " ".join(str(text).split())
    text = re.sub(r"^(?:\d+[.)]|[-*•])\s+", "", text)
    text = _LABEL.sub("", text).strip().strip('"').strip()
    end = text.find("?")
    return text[: end + 1] if 0 < end < len(text) - 1 else text


def well_formed(instruction: str) -> bool:
    """One question (ends with its only "?") or one request ("Explain ...", "Show ..." ending with "." or "?")."""
    text = instruction.strip()
    if text.count("?") > 1:
        return False
    if text.endswith("?"):
        return True
    first = text.split(" ", 1)[0].lower().strip(",:")
    return first in _REQUEST_VERBS and text.endswith(".")


def instruction_length_ok(instruction: str, config: FilterConfig) -> bool:
    count = len(words(instruction))
    return config.min_instruction_words <= count <= config.max_instruction_words


def speaks_of_source(instruction: str) -> bool:
    """True for "the passage / the text / the author ..." phrasing."""
    return _META.search(instruction) is not None


def copies_answer(instruction: str, answer: str, n: int) -> bool:
    """True when the instruction repeats a run of n words of its answer (it gives the answer away)."""
    instruction_words = words(instruction)
    if len(instruction_words) < n:
        return False
    return bool(ngrams(instruction_words, n) & ngrams(words(answer), n))


def ngram_overlap(text: str, reference: str, n: int) -> float:
    """Share of `text`'s word n-grams that occur in `reference` (0 when text is shorter than n words)."""
    grams = ngrams(words(text), n)
    if not grams:
        return 0.0
    return len(grams & ngrams(words(reference), n)) / len(grams)


def rejected_problem(rejected: str, chosen: str, config: FilterConfig) -> str | None:
    """Why a preference pair is unusable ("rejected_empty" / "rejected_overlap"), or None."""
    if not rejected.strip() or not words(rejected):
        return "rejected_empty"
    normalized = " ".join(words(rejected))
    if normalized == " ".join(words(chosen)):
        return "rejected_overlap"
    if ngram_overlap(rejected, chosen, config.rejected_overlap_ngram) >= config.max_rejected_overlap:
        return "rejected_overlap"
    return None


def _order(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big")


class NearDuplicateIndex:
    """Streaming near-duplicate detection by Jaccard similarity of word shingles, with prefix filtering.

    Two sets with Jaccard >= t must share one of the first |A| - ceil(t·|A|) + 1 elements of each, in any fixed
    global order (here: a hash of the token). Only those prefixes are indexed, so a new text is compared with
    few candidates instead of every text kept so far.
    """

    def __init__(self, threshold: float, shingle: int = 1) -> None:
        self.threshold = threshold
        self.shingle = shingle
        self._sets: list[frozenset[str]] = []
        self._index: dict[str, list[int]] = defaultdict(list)

    def _tokens(self, text: str) -> frozenset[str]:
        tokens = words(text)
        if self.shingle > 1:
            return frozenset(" ".join(g) for g in ngrams(tokens, self.shingle)) or frozenset([" ".join(tokens)])
        return frozenset(tokens)

    def _prefix(self, tokens: frozenset[str]) -> list[str]:
        ordered = sorted(tokens, key=_order)
        size = len(ordered) - math.ceil(self.threshold * len(ordered)) + 1
        return ordered[: max(1, size)]

    def find(self, text: str) -> int | None:
        """The index of a kept text this one nearly duplicates, or None."""
        tokens = self._tokens(text)
        if not tokens:
            return None
        seen: set[int] = set()
        for token in self._prefix(tokens):
            for candidate in self._index.get(token, ()):
                if candidate in seen:
                    continue
                seen.add(candidate)
                other = self._sets[candidate]
                if len(tokens & other) / len(tokens | other) >= self.threshold:
                    return candidate
        return None

    def add(self, text: str) -> bool:
        """Keep `text` unless it nearly duplicates a kept one; True when kept."""
        if self.find(text) is not None:
            return False
        tokens = self._tokens(text)
        position = len(self._sets)
        self._sets.append(tokens)
        for token in self._prefix(tokens):
            self._index[token].append(position)
        return True


def dedupe(texts: Sequence[str], threshold: float, shingle: int = 1) -> list[bool]:
    """For each text in order: kept (True) or a near-duplicate of an earlier kept one (False)."""
    index = NearDuplicateIndex(threshold, shingle)
    return [index.add(text) for text in texts]
