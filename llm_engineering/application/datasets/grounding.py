"""An independent grounding checker: how much of an answer is found, word for word, in its source document.

It knows nothing about how the answer was made. It compares the answer's word 8-grams (lower-cased words,
punctuation and whitespace ignored) with the 8-grams of the whole cleaned source document. An answer is fully
grounded when every one of its 8-grams occurs in the source. Citation markers (`[1]`) are removed from the
answer first: they are the dataset's format, not the author's words. An answer shorter than n words must occur
in the source as one contiguous word sequence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

GROUNDING_NGRAM = 8
_WORD = re.compile(r"\w+", re.UNICODE)
_CITATION = re.compile(r"\[\d{1,3}\]")


def words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def grounded_share(answer: str, source: str, n: int = GROUNDING_NGRAM, source_ngrams: set | None = None) -> float:
    """Share of the answer's word n-grams found in `source` (1.0 = every word sequence is the author's)."""
    answer_words = words(_CITATION.sub(" ", answer))
    if not answer_words:
        return 0.0
    source_words = words(source)
    if len(answer_words) < n:
        size = len(answer_words)
        return 1.0 if tuple(answer_words) in ngrams(source_words, size) else 0.0
    grams = [tuple(answer_words[i : i + n]) for i in range(len(answer_words) - n + 1)]
    known = source_ngrams if source_ngrams is not None else ngrams(source_words, n)
    return sum(1 for g in grams if g in known) / len(grams)


def grounding_summary(
    pairs: Iterable[tuple[str, str]], n: int = GROUNDING_NGRAM, threshold: float = 1.0
) -> dict[str, Any]:
    """Over (answer, source document text) pairs: the share of fully grounded answers and the mean share."""
    cache: dict[int, set] = {}
    shares: list[float] = []
    for answer, source in pairs:
        key = hash(source)
        if key not in cache:
            cache[key] = ngrams(words(source), n)
        shares.append(grounded_share(answer, source, n, cache[key]))
    fully = sum(1 for s in shares if s >= threshold)
    return {
        "checker": f"word {n}-grams of the answer found in the source document",
        "ngram": n,
        "answers": len(shares),
        "fully_grounded": fully,
        "fully_grounded_share": round(fully / len(shares), 4) if shares else 0.0,
        "mean_share": round(sum(shares) / len(shares), 4) if shares else 0.0,
        "min_share": round(min(shares), 4) if shares else 0.0,
    }
