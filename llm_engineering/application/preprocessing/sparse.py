"""BM25-style sparse lexical vectors. Qdrant applies the IDF (`Modifier.IDF`); we supply the saturated term
frequency with length normalisation, which only depends on the chunk itself, so a chunk's vector never changes
when other documents are added or removed (incremental runs and re-runs give identical points).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

from llm_engineering.domain.vectors import SparseVec

# Identifiers are split too (snake_case by the regex, camelCase below) so code matches prose queries.
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_STOPWORDS_TEXT = """
    a an and are as at be but by for from has have how i if in into is it its of on or so that the their them then
    there these they this to was were what when where which who why will with you your we our me my do does did can
    could would should about than too very just not no
"""
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

BM25_K1 = 1.2
BM25_B = 0.75
BM25_AVG_LEN = 120.0  # typical chunk length in terms; a fixed constant keeps vectors corpus-independent


def terms(text: str) -> list[str]:
    out = []
    for word in _TOKEN.findall(text):
        parts = _CAMEL.split(word) if not word.islower() else [word]
        for part in parts:
            term = part.lower()
            if len(term) > 1 and term not in _STOPWORDS:
                out.append(term)
    return out


def term_index(term: str) -> int:
    """Stable 31-bit index of a term (blake2b, not Python's salted hash)."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "big") & 0x7FFFFFFF


def _merge(weights: dict[int, float]) -> SparseVec:
    indices = sorted(weights)
    return SparseVec(indices, [weights[i] for i in indices])


def document_vector(text: str) -> SparseVec:
    counts = Counter(terms(text))
    length = sum(counts.values())
    norm = BM25_K1 * (1 - BM25_B + BM25_B * length / BM25_AVG_LEN)
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        index = term_index(term)  # a hash collision just adds the two terms' weights
        weights[index] = weights.get(index, 0.0) + tf * (BM25_K1 + 1) / (tf + norm)
    return _merge(weights)


def query_vector(text: str) -> SparseVec:
    """Each distinct query term weighs 1; Qdrant multiplies by the term's IDF over the indexed chunks."""
    return _merge(dict.fromkeys((term_index(t) for t in set(terms(text))), 1.0))
