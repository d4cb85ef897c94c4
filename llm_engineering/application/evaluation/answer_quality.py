"""Is an answer worth reading? Judge-free answer metrics per RAG answer, and their rates per model.

- degenerate: the model's answer repeats a sentence, or a word 4-gram three times (the serving guard's own test,
  `application/rag/repetition.py`); counted before the guard ended it, so the number measures the model;
- served degenerate: what the user got (after the guard) still repeats;
- copied header: the answer pastes a passage header ("[4] tiny-rag (Elena Marchetti)") instead of citing it;
- empty: fewer than three words;
- reference-fact recall: the share of the reference answer's content words found in the answer;
- cited: at least one [n]; supported: at least one cited sentence whose passage holds most of its content words;
- attributed: the service added a citation the model left out (a sentence quoting a passage word for word,
  `application/rag/attribution.py`): cited minus attributed is what the model cites by itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm_engineering.application.evaluation.results import GeneratedAnswer, mean
from llm_engineering.application.evaluation.text_metrics import content_words
from llm_engineering.application.rag.attribution import ATTRIBUTION_NOTE
from llm_engineering.application.rag.repetition import HEADER_NOTE, copies_header, degenerate, is_header_line

GUARD_NOTE = "repetition guard:"
MIN_WORDS = 3

# Per-model rates (mean of the per-answer 0/1 values; fact recall: mean of the per-answer recall).
ANSWER_KEYS = (
    "answer.degenerate_rate",
    "answer.served_degenerate_rate",
    "answer.copied_header_rate",
    "answer.served_copied_header_rate",
    "answer.empty_rate",
    "answer.fact_recall",
    "answer.cited_rate",
    "answer.supported_rate",
    "answer.attributed_rate",
)


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def fact_recall(answer: str, reference: str) -> float | None:
    """Content words of the reference answer found in the answer (plural 's' ignored); None without any."""
    wanted = {_stem(w) for w in content_words(reference)}
    if not wanted:
        return None
    found = {_stem(w) for w in content_words(answer)}
    return len(wanted & found) / len(wanted)


def passage_headers(answer: GeneratedAnswer) -> list[str]:
    """The "[n] Title (Author)" lines the model saw in its prompt (read back from the captured prompt)."""
    if not answer.prompt:
        return []
    text = str(answer.prompt[-1].get("content", ""))
    body = text.split("Context:\n", 1)[-1].rsplit("\n\nQuestion: ", 1)[0]
    # The header pattern, not any "[...)" line: a passage's own markdown link line ("[page.html](https://...)")
    # quoted in an answer is the author's text, not a pasted header.
    return [line for line in body.splitlines() if is_header_line(line)]


def answer_metrics(answer: GeneratedAnswer) -> dict[str, float | None]:
    """The per-answer values (0/1 flags, recall in [0, 1]) under `answer.*` keys."""
    text = answer.answer or ""
    served_loops = degenerate(text)
    guarded = any(note.startswith(GUARD_NOTE) for note in answer.notes)
    citations = answer.metrics.get("citations") or {}
    checks = citations.get("checks") or []
    served_header = copies_header(text, passage_headers(answer))
    return {
        "answer.degenerate": float(served_loops or guarded),
        "answer.served_degenerate": float(served_loops),
        # the model pasted a header even when the serving guard kept it from the reader (as for loops)
        "answer.copied_header": float(served_header or any(n.startswith(HEADER_NOTE) for n in answer.notes)),
        "answer.served_copied_header": float(served_header),
        "answer.empty": float(len(text.split()) < MIN_WORDS),
        "answer.fact_recall": fact_recall(text, answer.reference) if answer.reference else None,
        "answer.cited": float(bool(citations.get("citations"))),
        "answer.supported": float(any(c.get("supported") for c in checks)),
        "answer.attributed": float(any(n.startswith(ATTRIBUTION_NOTE) for n in answer.notes)),
    }


def answer_rates(answers: Sequence[GeneratedAnswer]) -> dict[str, float | None]:
    """Per-model rates over the answers that were produced (failed requests excluded, counted elsewhere)."""
    rows = [a.metrics for a in answers if not a.error]
    rates: dict[str, float | None] = {}
    for key in ANSWER_KEYS:
        per_answer = key.removesuffix("_rate")
        rates[key] = mean([row.get(per_answer) for row in rows])
    rates["answer.answered"] = float(len(rows))
    return rates


def side_by_side(generations: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per question: the reference and each model's answer with its flags (for the report's HTML)."""
    rows: dict[str, dict[str, Any]] = {}
    for generation in generations:
        for answer in generation.rag_answers:
            row = rows.setdefault(
                answer.question, {"id": answer.id, "question": answer.question, "reference": answer.reference or ""}
            )
            flags = [
                label
                for key, label in (
                    ("answer.degenerate", "loops"),
                    ("answer.copied_header", "copied header"),
                    ("answer.empty", "empty"),
                )
                if answer.metrics.get(key)
            ]
            row[generation.model] = {
                "answer": answer.error or answer.answer,
                "flags": flags,
                "fact_recall": answer.metrics.get("answer.fact_recall"),
                "cited": bool(answer.metrics.get("answer.cited")),
                "supported": bool(answer.metrics.get("answer.supported")),
                "notes": answer.notes,
            }
    return list(rows.values())
