"""Citations the model left out: an answer sentence that quotes a passage word for word is cited to it.

Why: a small twin that learnt to answer in its author's words mostly quotes the passage that holds the answer,
and often forgets the `[n]` (on the held-out check 2 in 3 of its answers cited nothing although most quoted a
passage). The reader should still see where a sentence comes from. What counts as a quote is strict on purpose:
`QUOTE_WORDS` words in a row found in exactly that passage (the dataset's grounding check uses word 8-grams too),
never a looser content-word overlap, so an attributed citation is a quotation, not a guess.

What it does: per run of consecutive sentences quoting the same passage, the first one gets ` [n]` (the training
data cites in the first sentence too); sentences that already cite, headings, lines in code fences, and sentences
quoting no passage (or several equally) are left alone; headings and short lines do not break a run. The
response's notes say how many citations were added, and the evaluation counts such answers apart
(`answer.attributed`), so the model's own citing stays measurable.

Limits: paraphrases are not attributed; a sentence shorter than `QUOTE_WORDS` words is never attributed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from llm_engineering.application.rag.repetition import sentence_spans, words
from llm_engineering.domain.prompts import cite_sentence, without_citations

QUOTE_WORDS = 8
ATTRIBUTION_NOTE = "attribution:"

_CITED = re.compile(r"\[\d{1,3}\]")


@dataclass(frozen=True)
class Attribution:
    text: str
    added: tuple[int, ...] = ()  # the passage number of each citation added, in answer order

    @property
    def notes(self) -> list[str]:
        if not self.added:
            return []
        named = ", ".join(f"[{n}]" for n in dict.fromkeys(self.added))
        return [
            f"{ATTRIBUTION_NOTE} cited {named} after {len(self.added)} sentence(s) quoting the passage word for word"
        ]


def _grams(words: Sequence[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + QUOTE_WORDS]) for i in range(len(words) - QUOTE_WORDS + 1)}


def _words(text: str) -> list[str]:
    return words(without_citations(text))


def _sentences(text: str) -> list[tuple[int, int]]:
    """The guard's sentences (a trailing "[n]" belongs to the sentence before it), and an unfinished tail."""
    spans = sentence_spans(text)
    end = spans[-1][1] if spans else 0
    return spans + [(end, len(text))] if text[end:].strip() else spans


def quoted_passage(sentence: str, passage_grams: Sequence[set[tuple[str, ...]]]) -> int | None:
    """The number (from 1) of the one passage the sentence quotes (shares a `QUOTE_WORDS`-word run with), if any."""
    grams = _grams(_words(sentence))
    if not grams:
        return None
    shared = [len(grams & p) for p in passage_grams]
    best = max(shared, default=0)
    if best == 0 or shared.count(best) > 1:
        return None
    return shared.index(best) + 1


class Attributor:
    """Cites quoting sentences as an answer is produced: `cite` takes complete sentences (the whole answer, or
    the pieces a streaming guard releases, in order) and returns them with the added citations."""

    def __init__(self, passages: Sequence[str]) -> None:
        self.passage_grams = [_grams(_words(p)) for p in passages]
        self.added: list[int] = []
        self._previous: int | None = None  # the passage the last sentence quoted (a run is cited once)
        self._fences = 0  # code fences seen so far (odd: inside a code block)
        self.text = ""  # everything cited so far, as returned

    def cite(self, text: str) -> str:
        cited = self._cite(text)
        self.text += cited
        return cited

    def _cite(self, text: str) -> str:
        if not self.passage_grams or not text.strip():
            return text
        out, last = [], 0
        for start, end in _sentences(text):
            sentence = text[start:end]
            fences = sentence.count("```")
            inside_code = self._fences % 2 == 1 or fences > 0
            self._fences += fences
            if inside_code:
                self._previous = None
                continue
            own = _CITED.search(sentence)
            if own:  # the model's own citation stands, and covers the run of quotes that follows it
                self._previous = int(own.group()[1:-1])
                continue
            if sentence.lstrip().startswith("#") or len(_words(sentence)) < QUOTE_WORDS:
                continue  # a heading is not a claim, and a short line quotes nothing: the run goes on
            number = quoted_passage(sentence, self.passage_grams)
            if number is not None and number != self._previous:
                body = len(sentence.rstrip())
                out += [text[last:start], cite_sentence(sentence[:body], number)]
                last = start + body
                self.added.append(number)
            self._previous = number
        out.append(text[last:])
        return "".join(out)

    def result(self) -> Attribution:
        return Attribution(text=self.text, added=tuple(self.added))


def attribute(text: str, passages: Sequence[str]) -> Attribution:
    """`text` with a citation in the first sentence of each run of uncited sentences quoting one passage."""
    attributor = Attributor(passages)
    attributor.cite(text)
    return attributor.result()
