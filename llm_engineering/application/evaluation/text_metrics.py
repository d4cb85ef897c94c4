"""Reference-based text metrics that need no LLM, implemented here so they run even without Ragas. Pure.

- `levenshtein_similarity`: 1 - normalised edit distance (what Ragas' `NonLLMStringSimilarity` computes with its
  default Levenshtein measure through rapidfuzz);
- `rouge_l` / `rouge_n`: ROUGE F1 over lower-cased word tokens (Ragas' `RougeScore` uses Google's rouge_score,
  which also stems; numbers here can differ slightly from it);
- `context_precision_with_reference` / `context_recall_with_reference`: Ragas' non-LLM context precision
  (average precision of the retrieved contexts that match a reference context) and recall (share of reference
  contexts matched by a retrieved one), a match being a string similarity of at least `threshold`;
- `id_precision` / `id_recall`: the same by identifier (document links), like Ragas' IDBased metrics.
- citation validity: every cited [n] exists, and the cited passage supports the sentence that cites it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

from llm_engineering.application.evaluation.stylometry import FUNCTION_WORDS

_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
_STOP = set(FUNCTION_WORDS)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def levenshtein_distance(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def levenshtein_similarity(a: str, b: str) -> float:
    """1 - distance / max length (1.0 for two empty strings). rapidfuzz when installed (same number, faster)."""
    if not a and not b:
        return 1.0
    try:
        from rapidfuzz.distance import Levenshtein

        return float(Levenshtein.normalized_similarity(a, b))
    except ImportError:  # pragma: no cover - rapidfuzz ships with the eval extra
        return 1.0 - levenshtein_distance(a, b) / max(len(a), len(b))


def _f1(overlap: int, predicted: int, reference: int) -> float:
    if overlap == 0 or predicted == 0 or reference == 0:
        return 0.0
    precision, recall = overlap / predicted, overlap / reference
    return 2 * precision * recall / (precision + recall)


def rouge_n(prediction: str, reference: str, n: int = 1) -> float:
    def grams(text: str) -> Counter:
        words = tokens(text)
        return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))

    p, r = grams(prediction), grams(reference)
    return _f1(sum((p & r).values()), sum(p.values()), sum(r.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if not a or not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: longest common subsequence of word tokens."""
    p, r = tokens(prediction), tokens(reference)
    return _f1(lcs_length(p, r), len(p), len(r))


Similarity = Callable[[str, str], float]


def context_precision_with_reference(
    retrieved: Sequence[str], references: Sequence[str], threshold: float = 0.5, similarity: Similarity | None = None
) -> float | None:
    """Average precision over the ranked retrieved contexts, a context being relevant when it matches a
    reference context (similarity >= threshold). None without retrieved or reference contexts."""
    if not retrieved or not references:
        return None
    similarity = similarity or levenshtein_similarity
    verdicts = [int(max(similarity(r, ref) for ref in references) >= threshold) for r in retrieved]
    return average_precision(verdicts)


def average_precision(verdicts: Sequence[int]) -> float:
    hits = sum(verdicts)
    if hits == 0:
        return 0.0
    return sum(sum(verdicts[: i + 1]) / (i + 1) for i, v in enumerate(verdicts) if v) / hits


def context_recall_with_reference(
    retrieved: Sequence[str], references: Sequence[str], threshold: float = 0.5, similarity: Similarity | None = None
) -> float | None:
    """Share of reference contexts matched by some retrieved context (similarity > threshold)."""
    if not references:
        return None
    if not retrieved:
        return 0.0
    similarity = similarity or levenshtein_similarity
    return sum(1 for ref in references if max(similarity(r, ref) for r in retrieved) > threshold) / len(references)


def id_precision(retrieved_ids: Sequence[str], reference_ids: Sequence[str]) -> float | None:
    if not retrieved_ids:
        return None
    wanted = set(reference_ids)
    return sum(1 for i in retrieved_ids if i in wanted) / len(retrieved_ids)


def id_recall(retrieved_ids: Sequence[str], reference_ids: Sequence[str]) -> float | None:
    if not reference_ids:
        return None
    found = set(retrieved_ids)
    return sum(1 for i in set(reference_ids) if i in found) / len(set(reference_ids))


# --- citations ---------------------------------------------------------------------------------------------------
_CITATION = re.compile(r"\[(\d{1,3})\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def content_words(text: str) -> set[str]:
    """Words that carry content (function words and citation numbers left out)."""
    return {t for t in tokens(_CITATION.sub(" ", text)) if (t not in _STOP and len(t) > 1) or t.isdigit()}


def support_score(sentence: str, passage: str) -> float:
    """Share of the sentence's content words found in the passage (1.0 when the sentence has none)."""
    words = content_words(sentence)
    if not words:
        return 1.0
    return len(words & content_words(passage)) / len(words)


def citation_validity(answer: str, passages: Sequence[str], support_threshold: float = 0.5) -> dict[str, object]:
    """Which [n] an answer cites, whether each exists among `passages` (numbered from 1), and whether the passage
    supports each sentence that cites it (support_score >= threshold).

    Rates are None when there is nothing to rate (no citation at all), never a flattering 1.0.
    """
    cited = [int(m) for m in _CITATION.findall(answer)]
    valid = [n for n in cited if 1 <= n <= len(passages)]
    checks: list[dict[str, object]] = []
    for sentence in _SENTENCE.split(answer):
        for number in dict.fromkeys(int(m) for m in _CITATION.findall(sentence)):
            if 1 <= number <= len(passages):
                score = support_score(sentence, passages[number - 1])
                checks.append({"number": number, "support": round(score, 4), "supported": score >= support_threshold})
    return {
        "citations": len(cited),
        "invalid_citations": len(cited) - len(valid),
        "valid_rate": len(valid) / len(cited) if cited else None,
        "cited_sentences": len(checks),
        "supported_rate": sum(1 for c in checks if c["supported"]) / len(checks) if checks else None,
        "checks": checks,
    }
