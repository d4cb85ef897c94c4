"""Stylometry: how far a model's writing is from the author's, without any judge. Pure functions.

A style profile of a set of texts holds:

- the distribution of a fixed list of English function words ("the", "of", "but", "which" ...): the classic
  authorship-attribution signal (Mosteller & Wallace; Burrows' Delta) — topic-independent, hard to fake;
- sentence-length statistics (words per sentence: mean, standard deviation);
- vocabulary statistics: moving-average type-token ratio over 50-word windows (MATTR, which unlike the plain
  type-token ratio does not fall with text length), mean word length, share of words used once (hapax).

`style_distance(generated, reference)` compares two profiles: the Jensen-Shannon divergence (base 2, in [0, 1])
of the function-word distributions, and relative differences of the other statistics, each capped at 1. The
composite `distance` is their mean — 0 means "same style by these measures", higher is further away.
Citation markers ([1]) and code blocks are removed before profiling: they are format, not voice.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

# A fixed list of English function words (articles, pronouns, prepositions, conjunctions, auxiliaries,
# common adverbs): the same list for every text, so distributions are comparable.
_FUNCTION_WORDS_TEXT = """a about above after again against all also although am an and any are as at be because been
    before being
    below between both but by can could did do does doing down during each either enough even ever every few for
    from further had has have having he her here hers herself him himself his how however i if in into is it its
    itself just least less may me might mine more most much must my myself neither never no nor not now of off
    often on once only or other ought our ours ourselves out over own perhaps quite rather same several shall she
    should since so some such than that the their theirs them themselves then there these they this those though
    through thus to too under until up upon us very was we were what whatever when where whether which while who
    whom whose why will with within without would yet you your yours yourself yourselves"""
FUNCTION_WORDS: tuple[str, ...] = tuple(_FUNCTION_WORDS_TEXT.split())
_FUNCTION_INDEX = {word: i for i, word in enumerate(FUNCTION_WORDS)}
_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?|\d+(?:[.,]\d+)*%?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n{2,}|\n(?=\s*[-*#\d])")
_CITATION = re.compile(r"\s?\[\d{1,3}\]")
_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.DOTALL)
MATTR_WINDOW = 50


def clean_for_style(text: str) -> str:
    """Drop what is format rather than voice: citation markers and fenced code."""
    return _CITATION.sub("", _CODE_BLOCK.sub(" ", text)).strip()


def words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def sentences(text: str) -> list[str]:
    """Sentences (and list items / paragraphs) that hold at least one word."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and words(s)]


def function_word_distribution(texts: Iterable[str]) -> list[float]:
    """Relative frequency of each FUNCTION_WORDS entry among the function words used (all zeros if none)."""
    counts = [0] * len(FUNCTION_WORDS)
    for text in texts:
        for word in words(text):
            index = _FUNCTION_INDEX.get(word)
            if index is not None:
                counts[index] += 1
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0] * len(counts)


def jensen_shannon(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint). An all-zero side counts as disjoint."""
    if len(p) != len(q):
        raise ValueError("distributions of different lengths")
    if not any(p) or not any(q):
        return 1.0 if any(p) or any(q) else 0.0
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl(x: Sequence[float]) -> float:
        return sum(a * math.log2(a / c) for a, c in zip(x, m, strict=True) if a > 0)

    return max(0.0, min(1.0, (kl(p) + kl(q)) / 2))


def mattr(tokens: Sequence[str], window: int = MATTR_WINDOW) -> float:
    """Moving-average type-token ratio; the plain ratio for texts shorter than the window."""
    if not tokens:
        return 0.0
    if len(tokens) <= window:
        return len(set(tokens)) / len(tokens)
    counts = Counter(tokens[:window])
    total = len(counts)
    for i in range(window, len(tokens)):
        new, old = tokens[i], tokens[i - window]
        counts[new] += 1
        counts[old] -= 1
        if counts[old] == 0:
            del counts[old]
        total += len(counts)
    return total / ((len(tokens) - window + 1) * window)


@dataclass
class StyleProfile:
    texts: int
    words: int
    sentences: int
    sentence_length_mean: float
    sentence_length_std: float
    mattr: float
    word_length_mean: float
    hapax_ratio: float
    function_word_share: float  # share of all words that are function words
    function_words: list[float]

    def summary(self) -> dict[str, float]:
        data = asdict(self)
        data.pop("function_words")
        return data


def style_profile(texts: Iterable[str]) -> StyleProfile:
    texts = [clean_for_style(t) for t in texts if t and t.strip()]
    all_words: list[str] = []
    lengths: list[int] = []
    mattrs: list[tuple[float, int]] = []
    for text in texts:
        tokens = words(text)
        all_words += tokens
        lengths += [len(words(s)) for s in sentences(text)]
        if tokens:
            mattrs.append((mattr(tokens), len(tokens)))
    counts = Counter(all_words)
    n = len(all_words)
    function_count = sum(c for w, c in counts.items() if w in _FUNCTION_INDEX)
    return StyleProfile(
        texts=len(texts),
        words=n,
        sentences=len(lengths),
        sentence_length_mean=statistics.fmean(lengths) if lengths else 0.0,
        sentence_length_std=statistics.pstdev(lengths) if len(lengths) > 1 else 0.0,
        # Weighted by length: one long text counts more than a one-liner.
        mattr=sum(m * k for m, k in mattrs) / sum(k for _, k in mattrs) if mattrs else 0.0,
        word_length_mean=statistics.fmean(len(w) for w in all_words) if all_words else 0.0,
        hapax_ratio=sum(1 for c in counts.values() if c == 1) / len(counts) if counts else 0.0,
        function_word_share=function_count / n if n else 0.0,
        function_words=function_word_distribution(texts),
    )


def _relative_gap(value: float, reference: float) -> float:
    if reference == 0:
        return 0.0 if value == 0 else 1.0
    return min(1.0, abs(value - reference) / abs(reference))


def style_distance(generated: StyleProfile, reference: StyleProfile) -> dict[str, float]:
    """Components and their mean (`distance`, 0 = same style by these measures; each component in [0, 1])."""
    components = {
        "function_word_jsd": jensen_shannon(generated.function_words, reference.function_words),
        "sentence_length_gap": _relative_gap(generated.sentence_length_mean, reference.sentence_length_mean),
        "sentence_length_std_gap": _relative_gap(generated.sentence_length_std, reference.sentence_length_std),
        "mattr_gap": _relative_gap(generated.mattr, reference.mattr),
        "word_length_gap": _relative_gap(generated.word_length_mean, reference.word_length_mean),
    }
    if generated.words == 0:  # nothing generated: as far as it gets
        components = dict.fromkeys(components, 1.0)
    return {"distance": sum(components.values()) / len(components), **components}


def compare_styles(generated: Iterable[str], reference: Iterable[str]) -> dict[str, float]:
    """style_distance of two sets of texts."""
    return style_distance(style_profile(generated), style_profile(reference))
