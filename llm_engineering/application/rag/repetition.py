"""The serving-side repetition guard: a pure function over an answer's text, and a streaming wrapper, that end a
repeating answer cleanly (at the last complete sentence before the loop) and say why.

Decoding defaults (domain/generation.py) make loops rare; they cannot make them impossible, and vLLM has no
n-gram blocking. What the guard calls degenerate is what the evaluation counts as degenerate
(`application/evaluation/answer_quality.py` uses `find_repetition` too): a sentence said twice (also when the
second time is only a part of the first: the served twin said "X, which is a very efficient way to do Y." and then
"A very efficient way to do Y."), or one word 4-gram said three times.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

NGRAM = 4
NGRAM_REPEATS = 3
MIN_SENTENCE_WORDS = 4  # "Yes." twice is not a loop
CONTAINED_MIN_WORDS = 6  # a sentence inside an earlier one repeats it when it is this long (4 words is a phrase)

_WORD = re.compile(r"[\w'’-]+", re.UNICODE)
# A sentence ends at . ! ? (optionally closed by quotes/brackets/a citation) followed by whitespace, or at a line end.
_SENTENCE_END = re.compile(r"(?:[.!?…]+[\"')\]]*(?:\s*\[\d{1,3}\])*(?=\s|$))|\n", re.UNICODE)


@dataclass(frozen=True)
class Repetition:
    """Where an answer starts repeating itself (`cut`: a character offset) and what repeats."""

    cut: int
    kind: str  # "sentence" | "ngram"
    repeated: str

    def note(self) -> str:
        what = "a sentence" if self.kind == "sentence" else f"a {NGRAM}-word phrase"
        return f"repetition guard: the answer started repeating {what} ({self.repeated[:60]!r}) and was ended there"


def _normalise(text: str) -> str:
    return " ".join(w.lower() for w in _WORD.findall(text))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each complete sentence (end exclusive, after its punctuation)."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if text[start:end].strip():
            spans.append((start, end))
        start = end
    return spans


def find_repetition(text: str) -> Repetition | None:
    """The earliest point where `text` repeats a sentence (of 4+ words) or a word 4-gram for the third time."""
    found: list[Repetition] = []
    seen: dict[str, int] = {}
    for start, end in sentence_spans(text):
        key = _normalise(text[start:end])
        size = len(key.split())
        if size < MIN_SENTENCE_WORDS:
            continue
        if key in seen or (size >= CONTAINED_MIN_WORDS and any(f" {key} " in f" {earlier} " for earlier in seen)):
            leading = len(text[start:end]) - len(text[start:end].lstrip())
            found.append(Repetition(cut=start + leading, kind="sentence", repeated=text[start:end].strip()))
            break
        seen[key] = start
    words = [(m.start(), m.group().lower()) for m in _WORD.finditer(text)]
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - NGRAM + 1):
        gram = tuple(w for _, w in words[i : i + NGRAM])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= NGRAM_REPEATS:
            found.append(Repetition(cut=words[i][0], kind="ngram", repeated=" ".join(gram)))
            break
    return min(found, key=lambda r: r.cut) if found else None


def end_cleanly(text: str, limit: int | None = None) -> str:
    """`text` up to `limit`, ended at its last complete sentence (or, with none, at the last whole word)."""
    head = text if limit is None else text[:limit]
    spans = sentence_spans(head)
    if spans and head[: spans[-1][1]].strip():
        return head[: spans[-1][1]].rstrip()
    trimmed = head.rstrip()
    if limit is None or limit >= len(text) and not trimmed:
        return trimmed
    return trimmed[: trimmed.rfind(" ")].rstrip(" ,;:-") if " " in trimmed else trimmed


@dataclass(frozen=True)
class GuardResult:
    text: str
    repetition: Repetition | None = None
    trimmed_at_limit: bool = False

    @property
    def notes(self) -> list[str]:
        notes = [self.repetition.note()] if self.repetition else []
        if self.trimmed_at_limit:
            notes.append("answer reached the token limit: ended at its last complete sentence")
        return notes


def guard_answer(text: str, finish_reason: str | None = None) -> GuardResult:
    """The answer a user may see: cut before a repetition; an answer cut by the token limit ends at its last
    complete sentence (not mid-word, not on "The answer is:")."""
    repetition = find_repetition(text)
    if repetition is not None:
        return GuardResult(text=end_cleanly(text, repetition.cut), repetition=repetition)
    if finish_reason == "length":
        ended = end_cleanly(text, len(text))
        if ended != text.rstrip():
            return GuardResult(text=ended, trimmed_at_limit=True)
    return GuardResult(text=text)


class StreamingGuard:
    """The guard over a stream: text is released sentence by sentence, so a repeated sentence (or a phrase's
    third time) is never sent; `feed` returns what may be sent now, `stopped` says the stream must end."""

    def __init__(self) -> None:
        self.text = ""
        self.sent = 0
        self.repetition: Repetition | None = None

    @property
    def stopped(self) -> bool:
        return self.repetition is not None

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.text += piece
        repetition = find_repetition(self.text)
        if repetition is not None:
            self.repetition = repetition
            end = max(self.sent, len(end_cleanly(self.text, repetition.cut)))
        else:
            spans = sentence_spans(self.text)
            end = spans[-1][1] if spans else 0
        return self._release(end)

    def finish(self, finish_reason: str | None = None) -> str:
        """What is left to send once the model has stopped."""
        if self.stopped:
            return ""
        result = guard_answer(self.text, finish_reason)
        return self._release(max(self.sent, len(result.text)))

    def _release(self, end: int) -> str:
        if end <= self.sent:
            return ""
        piece, self.sent = self.text[self.sent : end], end
        return piece

    def result(self, finish_reason: str | None = None) -> GuardResult:
        """The answer as sent, with the guard's findings."""
        sent = self.text[: self.sent]
        if self.repetition is not None:
            return GuardResult(text=sent.rstrip(), repetition=self.repetition)
        full = guard_answer(self.text, finish_reason)
        return GuardResult(text=sent.rstrip(), trimmed_at_limit=full.trimmed_at_limit)


async def guarded_stream(pieces: AsyncIterator[str]) -> AsyncIterator[str]:
    """Wrap a stream of text pieces with the guard (ends the stream at a repetition)."""
    guard = StreamingGuard()
    async for piece in pieces:
        out = guard.feed(piece)
        if out:
            yield out
        if guard.stopped:
            return
    rest = guard.finish()
    if rest:
        yield rest


def degenerate(text: str) -> bool:
    """A repeated sentence, or a word 4-gram three times (the evaluation's definition)."""
    return find_repetition(text) is not None


def copies_header(text: str, headers: Sequence[str] = ()) -> bool:
    """The answer pastes a passage header ("[4] Title (Author)" on a line of its own) instead of citing it."""
    known = {" ".join(h.split()) for h in headers}
    for line in text.splitlines():
        line = " ".join(line.split())
        if line and (line in known or _HEADER_LINE.match(line)):
            return True
    return False


_HEADER_LINE = re.compile(r"^\[\d{1,3}\]\s+\S.{0,200}\([^()]{2,80}\)$")
