"""Citations the model left out (issue #18): a sentence quoting a passage word for word is cited to it, in /rag and
while streaming; nothing else is; the evaluation counts such answers apart. And an answer cut at the token limit
keeps its prose rather than only a heading."""

from __future__ import annotations

import asyncio

from llm_engineering.application.evaluation.answer_quality import answer_metrics
from llm_engineering.application.evaluation.results import GeneratedAnswer
from llm_engineering.application.rag.attribution import QUOTE_WORDS, Attributor, attribute
from llm_engineering.application.rag.repetition import StreamingGuard, guard_answer
from tests.fakes import ScriptedLLM, collect_stream, fake_rag_corpus, fake_services

PASSAGES = [
    "The embedding model we used has a hard limit of 256 tokens. Anything longer is silently truncated, which is "
    "not an error and not a warning.",
    "Reciprocal rank fusion adds one over sixty plus the rank of each list for every document it has seen.",
]
FIRST = "The embedding model we used has a hard limit of 256 tokens."
SECOND = "Anything longer is silently truncated, which is not an error and not a warning."
FUSION = "In short, reciprocal rank fusion adds one over sixty plus the rank of each list."


def test_a_quoting_sentence_is_cited_once_per_run_before_its_full_stop():
    result = attribute(f"{FIRST} {SECOND} {FUSION}", PASSAGES)
    assert result.text == (
        "The embedding model we used has a hard limit of 256 tokens [1]. "
        f"{SECOND} In short, reciprocal rank fusion adds one over sixty plus the rank of each list [2]."
    )
    assert result.added == (1, 2) and result.notes[0].startswith("attribution: cited [1], [2] after 2 sentence(s)")


def test_what_is_not_a_quote_is_left_alone():
    paraphrase = "The model cuts everything after 256 tokens without telling anyone."
    assert attribute(paraphrase, PASSAGES).text == paraphrase  # shares no 8-word run
    short = "A hard limit of 256 tokens."  # a quote shorter than QUOTE_WORDS words
    assert len(short.split()) < QUOTE_WORDS and attribute(short, PASSAGES).added == ()
    cited = f"{FIRST[:-1]} [1]. {SECOND}"  # the model's own citation covers the quote that follows it
    assert attribute(cited, PASSAGES).text == cited
    wrong = f"{FIRST[:-1]} [2]. {SECOND}"  # a wrong one stands; the next quote of passage 1 is cited
    assert attribute(wrong, PASSAGES).text == f"{FIRST[:-1]} [2]. {SECOND[:-1]} [1]."
    code = f"```\n{FIRST}\n```\nDone."
    assert attribute(code, PASSAGES).text == code  # code is never cited
    assert attribute(FIRST, [PASSAGES[0], PASSAGES[0]]).added == ()  # two passages quoted equally: no guess
    heading = "## The embedding model we used has a hard limit of 256 tokens"
    assert attribute(heading, PASSAGES).added == ()  # a heading is not a claim
    run = f"{FIRST}\n\n### Truncation\n\n{SECOND}"  # a heading inside a quote does not start a new run
    assert attribute(run, PASSAGES).added == (1,)
    assert attribute(FIRST, []).text == FIRST and attribute("", PASSAGES).notes == []


def test_sentence_pieces_are_cited_as_the_whole_answer_is():
    text = f"{FIRST} {SECOND}\n{FUSION}"
    attributor = Attributor(PASSAGES)
    pieces = [attributor.cite(piece) for piece in (f"{FIRST} ", f"{SECOND}\n", FUSION)]
    assert "".join(pieces) == attributor.result().text == attribute(text, PASSAGES).text


def test_a_length_cut_keeps_prose_rather_than_only_a_heading():
    quoted = "## Why tokens\nThe embedding model we used has a hard limit of 256 tokens and anything longer is cut"
    result = guard_answer(quoted, "length")
    assert result.text == quoted.rsplit(" ", 1)[0] and result.trimmed_at_limit
    # with a complete sentence worth keeping, the cut stays at the sentence
    assert guard_answer(f"{FIRST} {SECOND} And then", "length").text == f"{FIRST} {SECOND}"
    guard = StreamingGuard()
    sent = guard.feed(quoted) + guard.finish("length")
    assert sent == result.text


TOPICS = {("Ada Lovelace", "chunking"): "Documents are chunked by tokens because the window is counted in tokens."}
QUOTE = "As I wrote, documents are chunked by tokens because the window is counted in tokens."


def test_rag_answer_and_stream_cite_a_quoted_passage_and_say_so():
    llm = ScriptedLLM(answer=QUOTE, json_answers={"query_expansion": {"queries": []}})
    service, _, _ = fake_services(fake_rag_corpus(TOPICS), llm)
    question = "Why should documents be chunked by tokens?"
    answer = asyncio.run(service.answer(question))
    expected = QUOTE[:-1] + " [1]."
    assert answer.answer == expected and answer.sources[0].cited
    assert any(n.startswith("attribution: cited [1]") for n in answer.notes)

    streamed, done = asyncio.run(collect_stream(service, question))
    assert streamed == expected == done.answer and any(n.startswith("attribution:") for n in done.notes)

    plain, _, _ = fake_services(fake_rag_corpus(TOPICS), llm, attribute_citations=False)
    untouched = asyncio.run(plain.answer(question))
    assert untouched.answer == QUOTE and not untouched.sources[0].cited


def test_the_evaluation_counts_attributed_answers_apart():
    passages = [TOPICS[("Ada Lovelace", "chunking")]]
    answer = GeneratedAnswer(
        id="q1", kind="rag", question="Why tokens?", answer=QUOTE[:-1] + " [1].", contexts=passages
    )
    answer.notes = ["attribution: cited [1] after 1 sentence(s) quoting the passage word for word"]
    answer.metrics["citations"] = {"citations": 1, "checks": [{"number": 1, "supported": True}]}
    metrics = answer_metrics(answer)
    assert metrics["answer.attributed"] == 1.0 and metrics["answer.cited"] == 1.0
    answer.notes = []
    assert answer_metrics(answer)["answer.attributed"] == 0.0
