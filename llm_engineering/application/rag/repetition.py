"""The serving-side repetition guard: a pure function over an answer's text, and a streaming wrapper, that end a
repeating answer cleanly (at the last complete sentence before the loop) and say why.

Decoding defaults (domain/generation.py) make loops rare; they cannot make them impossible, and vLLM has no
n-gram blocking. What the guard calls degenerate is what the evaluation counts as degenerate
(`application/evaluation/answer_quality.py` uses `find_repetition` too): a sentence said twice (also when the
second time is only a part of the first: the served twin said "X, which is a very efficient way to do Y." and then
"A very efficient way to do Y."), or one word 4-gram said three times.

The same guard drops a line that pastes a passage's header ("[2] Title (Author)", the prompt's furniture) and,
when the answer then cites nothing, cites that passage ([2]) at its end: a model that learnt to quote its
context tends to start by copying the header above the passage it quotes. The evaluation still counts such an
answer as a copied header (the model did it; the reader did not see it).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from llm_engineering.domain.prompts import cited_numbers

Cite = Callable[[str], str]
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


def words(text: str) -> list[str]:
    """The words of `text`, lower-cased (what repetition and quotation are measured in)."""
    return [w.lower() for w in _WORD.findall(text)]


def _normalise(text: str) -> str:
    return " ".join(words(text))


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
    return _at_last_whole_word(trimmed)


def _at_last_whole_word(text: str) -> str:
    text = text.rstrip()
    return text[: text.rfind(" ")].rstrip(" ,;:-") if " " in text else text


MIN_KEPT_WORDS = 8  # an answer cut at the token limit keeps at least this much prose when it can


def _prose_words(text: str) -> int:
    """Words outside headings and passage-header-like lines (what is left to read)."""
    return sum(len(line.split()) for line in text.splitlines() if not line.lstrip().startswith(("#", "[")))


def end_at_limit(text: str) -> str:
    """An answer cut by the token limit: ended at its last complete sentence, unless that keeps almost nothing but
    headings (a quoted passage whose first sentence ran past the limit), then at its last whole word."""
    ended = end_cleanly(text, len(text))
    if _prose_words(ended) >= MIN_KEPT_WORDS:
        return ended
    whole_words = _at_last_whole_word(text)
    return whole_words if _prose_words(whole_words) > _prose_words(ended) else ended


HEADER_NOTE = "header guard:"


@dataclass(frozen=True)
class GuardResult:
    text: str
    repetition: Repetition | None = None
    trimmed_at_limit: bool = False
    pasted_headers: tuple[int, ...] = ()  # the passage numbers of the header lines dropped (0: a made-up one)

    @property
    def notes(self) -> list[str]:
        notes = [self.repetition.note()] if self.repetition else []
        if self.trimmed_at_limit:
            notes.append("answer reached the token limit: ended at its last complete sentence (or word)")
        if self.pasted_headers:
            named = ", ".join(f"[{n}]" if n else "a passage that does not exist" for n in self.pasted_headers)
            notes.append(f"{HEADER_NOTE} removed a pasted passage header line ({named})")
        return notes


def guard_answer(
    text: str, finish_reason: str | None = None, headers: Sequence[str] = (), cite: Cite | None = None
) -> GuardResult:
    """The answer a user may see: cut before a repetition; an answer cut by the token limit ends at its last
    complete sentence (not mid-word, not on "The answer is:"); with the passages' `headers`, no pasted header.
    `cite` (e.g. `Attributor.cite`) adds the citations the model left out, before a pasted header's is added."""
    repetition = find_repetition(text)
    trimmed = False
    if repetition is not None:
        text = end_cleanly(text, repetition.cut)
    elif finish_reason == "length":
        ended = end_at_limit(text)
        trimmed = ended != text.rstrip()
        text = ended if trimmed else text
    text, pasted = strip_pasted_headers(text, headers)
    if cite is not None:
        text = cite(text)
    if pasted:
        text = cite_pasted(text, pasted, len(headers))
    return GuardResult(text=text, repetition=repetition, trimmed_at_limit=trimmed, pasted_headers=tuple(pasted))


# "[n] Title (Author)" on a line of its own (also "[n]: …"): the prompt's passage header, pasted.
_HEADER_LINE = re.compile(r"^\[(\d{1,3})\]:?\s+\S.{0,200}\([^()]{2,80}\)$")
_NUMBERED_LINE = re.compile(r"^\[(\d{1,3})\]:?\s+\S")
_BYLINE = re.compile(r"\S.*\(([^()]{2,80})\)$")


def _header_number(
    line: str, known: dict[str, int], passages: int, authors: frozenset[str] = frozenset()
) -> int | None:
    """The passage number a header-like line names (0: a made-up passage), None when it is not a header line."""
    flat = " ".join(line.strip().strip("*#").split()).rstrip(":")
    if not flat:
        return None
    if flat.lower() in known:
        return known[flat.lower()]
    match = _HEADER_LINE.match(flat)
    if match is not None:
        number = int(match.group(1))
        return number if 1 <= number <= passages else 0
    # a short title-like line under a number no passage has: a made-up passage's header ("[4] A note on ...")
    invented = _NUMBERED_LINE.match(flat)
    if invented and int(invented.group(1)) > passages and len(flat.split()) <= 12:
        return 0
    # a title line the model misspelled, under a passage's author ("Systematic Improving Your RAG (Jason Liu)")
    byline = _BYLINE.search(flat)
    if byline and byline.group(1).lower() in authors and len(flat.split()) <= 16:
        return 0
    return None


def strip_pasted_headers(text: str, headers: Sequence[str]) -> tuple[str, list[int]]:
    """`text` without its lines that paste a passage header, and the numbers those lines named. Only with the
    passages' headers (`[n] Title (Author)`, as in the prompt): they say which lines are furniture."""
    if not headers:
        return text, []
    known: dict[str, int] = {}
    for number, header in enumerate(headers, start=1):
        flat = " ".join(header.split())
        known[flat.lower()] = number
        known[re.sub(r"^\[\d{1,3}\]\s*", "", flat).lower()] = number  # the title line without its number
    authors = frozenset(m.group(1).lower() for h in headers if (m := _BYLINE.search(" ".join(h.split()))))
    kept, pasted = [], []
    for line in text.splitlines(keepends=True):
        number = _header_number(line, known, len(headers), authors)
        if number is None:
            kept.append(line)
        else:
            pasted.append(number)
    if not pasted:
        return text, []
    return "".join(kept).strip(), pasted


def cite_pasted(text: str, pasted: Sequence[int], available: int) -> str:
    """An answer that pasted the header of passage n and cites nothing cites [n] at its end."""
    real = [n for n in pasted if n]
    if not text.strip() or not real or cited_numbers(text, available):
        return text
    return f"{text.rstrip()} [{real[0]}]"


class StreamingGuard:
    """The guard over a stream: text is released sentence by sentence, so a repeated sentence (or a phrase's
    third time) is never sent; `feed` returns what may be sent now, `stopped` says the stream must end. With the
    passages' `headers`, a line that opens like a header ("[") is held until complete and dropped if it is one."""

    def __init__(self, headers: Sequence[str] = (), cite: Cite | None = None) -> None:
        self.cite = cite  # applied to each released piece (whole sentences), as guard_answer applies it
        self.text = ""
        self.sent = 0
        self.out = ""
        self.headers = list(headers)
        self.pasted: list[int] = []
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
            end = self._hold_open_header_line(end)
        return self._release(end)

    def finish(self, finish_reason: str | None = None) -> str:
        """What is left to send once the model has stopped."""
        if self.stopped:
            return self._cite()
        result = guard_answer(self.text, finish_reason)
        return self._release(max(self.sent, len(result.text))) + self._cite()

    def _hold_open_header_line(self, end: int) -> int:
        if not self.headers:
            return end
        line_start = self.text.rfind("\n") + 1  # the last line, not yet ended
        if end > line_start and self.text[line_start:].lstrip(" *#").startswith("["):
            return max(self.sent, line_start)
        return end

    def _release(self, end: int) -> str:
        if end <= self.sent:
            return ""
        piece, self.sent = self.text[self.sent : end], end
        kept, pasted = strip_pasted_headers(piece, self.headers)
        if pasted:
            self.pasted.extend(pasted)
            piece = f"\n{kept}" if kept and self.out else kept  # the header's line goes, its text stays
        if self.cite is not None:
            piece = self.cite(piece)
        self.out += piece
        return piece

    def _cite(self) -> str:
        cited = cite_pasted(self.out, self.pasted, len(self.headers))
        if cited == self.out:
            return ""
        extra, self.out = cited[len(self.out.rstrip()) :], cited
        return extra

    def result(self, finish_reason: str | None = None) -> GuardResult:
        """The answer as sent, with the guard's findings."""
        text = self.out.rstrip()
        if self.repetition is not None:
            return GuardResult(text=text, repetition=self.repetition, pasted_headers=tuple(self.pasted))
        full = guard_answer(self.text, finish_reason)
        return GuardResult(text=text, trimmed_at_limit=full.trimmed_at_limit, pasted_headers=tuple(self.pasted))


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


def is_header_line(line: str) -> bool:
    """A line in the passage header format ("[2] Title (Author)")."""
    return _HEADER_LINE.match(" ".join(line.split())) is not None


def copies_header(text: str, headers: Sequence[str] = ()) -> bool:
    """The answer pastes a passage header ("[4] Title (Author)" on a line of its own) instead of citing it."""
    known = {" ".join(h.split()) for h in headers}
    for line in text.splitlines():
        line = " ".join(line.split())
        if line and (line in known or _HEADER_LINE.match(line)):  # the line is normalised already
            return True
    return False
