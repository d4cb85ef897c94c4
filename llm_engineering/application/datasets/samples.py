"""From kept (instruction, extract) pairs to rows: instruct samples (a share of them in the exact RAG inference
shape, citing their source), preference pairs, and a deterministic split by source document."""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, Field

from llm_engineering.application.evaluation.stylometry import FUNCTION_WORDS
from llm_engineering.application.evaluation.text_metrics import citation_validity
from llm_engineering.application.ports import PromptTokenCounter
from llm_engineering.application.rag.repetition import copies_header, degenerate
from llm_engineering.domain.datasets import Candidate, DatasetSample, Extract, Passage, PreferencePair
from llm_engineering.domain.prompts import (
    UNANSWERED_ANSWER,
    ContextPassage,
    build_sft_messages,
    cite_first_sentence,
    cited_numbers,
    format_passage,
    preference_prompt,
    without_citations,
)


class SampleConfig(BaseModel):
    with_context_share: float = Field(default=0.3, ge=0, le=1, description="Share of samples built with context")
    unanswerable_share: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="Of the with-context samples: share whose context lacks the source, answered by saying so",
    )
    span_max_words: int = Field(default=60, ge=5, description="Longest answer span (words) of a with-context sample")
    context_passages: int = Field(default=3, ge=1, description="Passages in a with-context sample (source first "
                                  "counted), as the RAG service's k")  # fmt: skip
    context_max_tokens: int = Field(default=1024, ge=1, description="Context budget (base-model tokens)")
    header_pairs: bool = Field(
        default=True,
        description="A preference pair per cited span whose rejected side pastes the source's header line first",
    )
    test_share: float = Field(default=0.2, ge=0, lt=1)
    sticky_split: bool = Field(
        default=True,
        description="A document keeps its side (train/test) of the latest dataset version; only documents new to "
        "the datasets are split, by test_share among themselves. A refreshed twin and the production twin are then "
        "compared on writing neither trained on, the new writing included (false: split everything afresh)",
    )
    seed: int = 42


def _unit(seed: int, *parts: str) -> float:
    """A deterministic number in [0, 1) from the seed and the parts."""
    digest = hashlib.sha256("\0".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def wants_context(candidate: Candidate, config: SampleConfig) -> bool:
    return _unit(config.seed, "context", candidate.extract_key, candidate.instruction) < config.with_context_share


def is_unanswerable(candidate: Candidate, config: SampleConfig) -> bool:
    """A with-context sample whose context leaves the source out (it needs distractors to show instead)."""
    return bool(candidate.distractors) and (
        _unit(config.seed, "unanswerable", candidate.extract_key, candidate.instruction) < config.unanswerable_share
    )


# --- the answer span ------------------------------------------------------------------------------------------------
_WORD = re.compile(r"[\w'’-]+", re.UNICODE)
_ENDS = (".", "!", "?", '"', "'", ")", "]", ":")  # a line that ends otherwise continues on the next one
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_FENCE = re.compile(r"^\s*(```|~~~)")
_LIST_OR_QUOTE = re.compile(r"^\s*(?:[-*+>]|\d+[.)])\s+")
_CODE_WORDS = {"code", "snippet", "implement", "implementation", "function", "class", "command", "syntax"}
_STOP = frozenset(FUNCTION_WORDS)


def _content(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP and len(w) > 2}


def prose_sentences(text: str) -> list[tuple[str, int]]:
    """The extract's sentences with the run they belong to, without headings, fenced code, tables or code-looking
    lines (each of those starts a new run: sentences of one run are contiguous words of the source)."""
    sentences: list[tuple[str, int]] = []
    in_code = False
    run = 0
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            run += 1
            continue
        stripped = line.strip()
        if not stripped and not in_code:
            continue
        code_like = sum(c in "{}();=<>`" for c in stripped) > max(3, len(stripped) // 12)
        if in_code or stripped.startswith(("#", "|")) or code_like:
            run += 1
            continue
        if _LIST_OR_QUOTE.match(stripped):
            run += 1  # the marker is not a word of the answer
            stripped = _LIST_OR_QUOTE.sub("", stripped)
        for part in _SENTENCE_BREAK.split(stripped):
            if not part.strip():
                continue
            previous = sentences[-1] if sentences else None
            if previous and previous[1] == run and (len(part.split()) < 3 or not previous[0].endswith(_ENDS)):
                sentences[-1] = (f"{sentences[-1][0]} {part.strip()}", run)  # "e.g." / "v2." fragments
            else:
                sentences.append((part.strip(), run))
    return sentences


def answer_span(question: str, extract: str, max_words: int = 60) -> str:
    """The author's own sentences that answer the question: the sentence sharing most content words with it,
    extended by the sentences that follow it in the same run while they fit `max_words` (the extract's own words,
    in order). Code and headings are left out unless the question asks for code; an extract with no prose sentence
    is kept whole."""
    return " ".join(answer_span_sentences(question, extract, max_words))


def answer_span_sentences(question: str, extract: str, max_words: int = 60) -> list[str]:
    """`answer_span`'s sentences (one item: the whole extract, for code or an extract without prose)."""
    if _content(question) & _CODE_WORDS:
        return [extract.strip()]
    sentences = prose_sentences(extract)
    if not sentences:
        return [extract.strip()]
    wanted = _content(question)
    scores = [len(_content(text) & wanted) - 0.01 * i for i, (text, _) in enumerate(sentences)]
    start = max(range(len(sentences)), key=lambda i: scores[i])
    first, run = sentences[start]
    chosen, words = [first], len(first.split())
    for text, other in sentences[start + 1 :]:
        size = len(text.split())
        if other != run or words + size > max_words:
            break
        chosen.append(text)
        words += size
    return chosen


def context_prompt(
    candidate: Candidate, extract: Extract, config: SampleConfig, counter: PromptTokenCounter
) -> tuple[list[dict[str, str]], int | None, list[ContextPassage]]:
    """The with-context chat before the answer (as served), the source's number (None: left out on purpose) and
    the passages. Deterministic: dataset generation asks the base model this same prompt."""
    key = f"{candidate.extract_key}\0{candidate.instruction}"
    if is_unanswerable(candidate, config):
        passages = [_numbered(p, i) for i, p in enumerate(candidate.distractors[: config.context_passages], start=1)]
        number = None
    else:
        passages, number = context_passages(extract, candidate.distractors, config, counter, key)
    messages = build_sft_messages(candidate.instruction, "x", passages)[:-1]
    return messages, number, passages


def context_passages(
    extract: Extract, distractors: Sequence[Passage], config: SampleConfig, counter: PromptTokenCounter, key: str
) -> tuple[list[ContextPassage], int]:
    """The source extract plus retrieved distractors within the budget, shuffled (seeded); and the source's number."""
    chosen = [Passage(title=extract.title, author=extract.author, link=extract.link, text=extract.text)]
    used = counter.count(format_passage(_numbered(chosen[0], 1)))
    for passage in distractors:
        if len(chosen) >= config.context_passages:
            break
        cost = counter.count(format_passage(_numbered(passage, len(chosen) + 1))) + 2
        if used + cost > config.context_max_tokens:
            continue
        chosen.append(passage)
        used += cost
    order = list(range(len(chosen)))
    random.Random(int(_unit(config.seed, "shuffle", key) * 2**32)).shuffle(order)
    passages = [_numbered(chosen[i], number) for number, i in enumerate(order, start=1)]
    return passages, order.index(0) + 1


def _numbered(passage: Passage, number: int) -> ContextPassage:
    return ContextPassage(number=number, title=passage.title, author=passage.author, link=passage.link,
                          text=passage.text)  # fmt: skip


def instruct_sample(
    candidate: Candidate, extract: Extract, config: SampleConfig, counter: PromptTokenCounter
) -> DatasetSample:
    """The extract is the answer; with context, the answer cites the passage it is (the source, as [n])."""
    common = {
        "instruction": candidate.instruction,
        "source_link": extract.link,
        "author": extract.author,
        "document_id": str(extract.document_id),
        "title": extract.title,
        "judge_score": candidate.judge_score,
    }
    if wants_context(candidate, config):
        prompt, source_number, passages = context_prompt(candidate, extract, config, counter)
        if source_number is None:
            answer, kind = UNANSWERED_ANSWER, "unanswerable"
        else:
            span = answer_span_sentences(candidate.instruction, extract.text, config.span_max_words)
            answer, kind = cite_first_sentence(span, source_number), "span"
        messages = build_sft_messages(candidate.instruction, answer, passages)
        return DatasetSample(
            answer=answer,
            messages=messages,
            with_context=True,
            context_links=[p.link for p in passages],
            kind=kind,
            **common,
        )
    answer = without_headings(extract.text)
    return DatasetSample(answer=answer, messages=build_sft_messages(candidate.instruction, answer), **common)


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s")


def without_headings(text: str) -> str:
    """The extract as an answer: the Markdown heading lines it opens with left out. A heading is the page's
    furniture, not an answer; a twin trained on extracts that open with one opens its answers with one. (Only the
    opening ones: the answer stays one contiguous run of the author's text.)"""
    lines = text.strip().split("\n")
    while lines and (_HEADING.match(lines[0]) or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines).strip() or text.strip()


def preference_pair(candidate: Candidate, extract: Extract, rejected: str) -> PreferencePair:
    """chosen = the author's extract, rejected = the base model's answer; prompt = the twin's no-context chat."""
    return PreferencePair(
        prompt=preference_prompt(candidate.instruction),
        chosen=without_headings(extract.text),
        rejected=rejected.strip(),
        source_link=extract.link,
        author=extract.author,
        instruction=candidate.instruction,
        document_id=str(extract.document_id),
    )


def context_answer_problem(
    answer: str, passages: Sequence[str], headers: Sequence[str], source: int | None
) -> str | None:
    """What is wrong with a RAG answer to a with-context prompt ("empty", "loops", "copied_header", "unsupported",
    "no_citation", "wrong_source"), or None when it is a fair answer (`source` None: the context lacks it)."""
    if len(answer.split()) < 3:
        return "empty"
    if degenerate(answer):
        return "loops"
    if copies_header(answer, headers):
        return "copied_header"
    if source is None:  # the context does not hold the answer: anything but saying so is an unsupported claim
        return None if _SAYS_UNANSWERED.search(answer) else "unsupported"
    cited = cited_numbers(answer, len(passages))
    if not cited:
        return "no_citation"
    if source not in cited:
        return "wrong_source"
    checks = citation_validity(answer, passages, 0.5)
    if not checks["supported_rate"]:
        return "unsupported"
    return None


_SAYS_UNANSWERED = re.compile(
    r"\b(?:don't|do not|does not|doesn't|cannot|can't|no|not)\b.{0,60}\b(?:context|sources?|passages?|information)\b",
    re.IGNORECASE,
)


def context_preference_pair(candidate: Candidate, sample: DatasetSample) -> PreferencePair | None:
    """chosen = the grounded answer (the author's span citing [n], or saying the context lacks it), rejected = the
    base model's own answer to the same with-context prompt, kept only when it fails (`context_answer_problem`)."""
    rejected = (candidate.context_rejected or "").strip()
    prompt = sample.messages[:-1]
    user = prompt[-1]["content"]
    passages, headers = _passages_of(user)
    source = None if sample.kind == "unanswerable" else sample.context_links.index(sample.source_link) + 1
    problem = context_answer_problem(rejected, passages, headers, source)
    return None if problem is None else _with_context_pair(sample, rejected, problem)


def _with_context_pair(sample: DatasetSample, rejected: str, problem: str) -> PreferencePair:
    """A with-context pair: the sample's prompt and grounded answer (chosen) against `rejected`."""
    return PreferencePair(
        prompt=sample.messages[:-1],
        chosen=sample.answer,
        rejected=rejected,
        source_link=sample.source_link,
        author=sample.author,
        instruction=sample.instruction,
        document_id=sample.document_id,
        kind="with_context",
        rejected_problem=problem,
    )


def header_preference_pair(sample: DatasetSample) -> PreferencePair | None:
    """chosen = the author's span citing [n]; rejected = the same text opened by the source passage's header line
    ("[n] Title (Author)") and citing nothing. Built, not sampled: a twin trained to quote its context learnt to
    start by pasting the header (main job, 768-token training: 6 of 8 answers), which the base rarely shows in
    its own with-context answers, so no sampled pair teaches against it."""
    if sample.kind != "span" or not sample.with_context or sample.source_link not in sample.context_links:
        return None
    prompt = sample.messages[:-1]
    _, headers = _passages_of(prompt[-1]["content"])
    number = sample.context_links.index(sample.source_link) + 1
    if number > len(headers):
        return None
    pasted = headers[number - 1] + "\n" + without_citations(sample.answer)
    return _with_context_pair(sample, pasted, "pasted_header")


def _passages_of(user: str) -> tuple[list[str], list[str]]:
    """The passage texts and their "[n] Title (Author)" headers from a RAG user message (format_context's format)."""
    body = user.split("Context:\n", 1)[-1].rsplit("\n\nQuestion: ", 1)[0]
    blocks = re.split(r"\n\n(?=\[\d{1,3}\] )", body)
    headers, texts = [], []
    for block in blocks:
        header, _, text = block.partition("\n")
        headers.append(header)
        texts.append(text)
    return texts, headers


def split_documents(
    documents_by_author: Mapping[str, Iterable[str]],
    test_share: float,
    seed: int,
    previous: Mapping[str, str] | None = None,
) -> set[str]:
    """The document ids that go to test. A document in `previous` (id -> "train" | "test": the last dataset
    version's split) keeps its side. Per author, the other documents are ordered by a seeded hash and the first
    round(share × n) go to test (at least one when there are two or more and share > 0, never all of them)."""
    previous = previous or {}
    test: set[str] = set()
    for author, ids in sorted(documents_by_author.items()):
        unique = set(ids)
        test.update(d for d in unique if previous.get(d) == "test")
        ordered = sorted((d for d in unique if d not in previous), key=lambda d: _unit(seed, "split", author, d))
        if test_share <= 0 or len(ordered) < 2:
            continue
        count = min(len(ordered) - 1, max(1, math.floor(test_share * len(ordered) + 0.5)))
        test.update(ordered[:count])
    return test
