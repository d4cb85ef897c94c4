"""Split text into overlapping windows of tokens (not characters)."""

import re

_TOKEN_RE = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens; good enough for BM25 and bag-of-words cosine."""
    return [token.lower() for token in _TOKEN_RE.findall(text)]


def chunk_tokens(text: str, size: int = 128, overlap: int = 16) -> list[str]:
    """Return chunks of at most `size` whitespace tokens, overlapping by `overlap`.

    The last chunk may be shorter. An empty text gives an empty list.
    """
    if size <= 0:
        raise ValueError("size must be positive")
    if not 0 <= overlap < size:
        raise ValueError("overlap must be in [0, size)")
    words = text.split()
    if not words:
        return []
    step = size - overlap
    chunks = []
    for start in range(0, len(words), step):
        window = words[start : start + size]
        chunks.append(" ".join(window))
        if start + size >= len(words):
            break
    return chunks
