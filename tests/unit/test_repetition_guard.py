"""The repetition guard and the generation defaults: a looping answer ends cleanly (also while streaming) and says
so in its notes; every answer is asked with the model version's penalties and a length suited to the question."""

from __future__ import annotations

import asyncio

from llm_engineering.application.rag.repetition import (
    StreamingGuard,
    copies_header,
    degenerate,
    find_repetition,
    guard_answer,
)
from llm_engineering.domain.generation import GenerationDefaults, generation_defaults
from llm_engineering.domain.prompts import SYSTEM_PROMPT_OPENING, TWIN_SYSTEM_PROMPT
from tests.fakes import ScriptedLLM, collect_stream, fake_rag_corpus, fake_services

LOOP = (
    "The tokenizer is designed to remove the tokenization of the tokenizer, which is a very efficient way to remove "
    "the tokenization of the tokenizer. "
)
GOOD = "Chunk by tokens, because the model's window is counted in tokens [1]. "
TOPICS = {("Ada Lovelace", "chunking"): "Documents are chunked by tokens because the window is counted in tokens."}


def test_a_repeated_sentence_is_cut_at_its_second_occurrence():
    text = GOOD + "Characters mislead the budget by a lot. " + "Characters mislead the budget by a lot. " * 3
    result = guard_answer(text)
    assert result.text == (GOOD + "Characters mislead the budget by a lot.").strip()
    assert result.repetition is not None and result.repetition.kind == "sentence"
    assert result.notes and result.notes[0].startswith("repetition guard:")


def test_a_sentence_said_again_as_part_of_an_earlier_one_is_a_repeat():
    first = "The tokenizer splits text into tokens, which is a very efficient way to count the budget. "
    text = GOOD + first + "A very efficient way to count the budget. " + "And then it stops."
    result = guard_answer(text)
    assert result.text == (GOOD + first).strip() and result.repetition.kind == "sentence"
    # a short phrase used twice, or a sentence that only shares words with an earlier one, is not a loop
    assert find_repetition(GOOD + "It is fast and it is cheap. " + "It is fast. ") is None
    assert find_repetition(first + "Counting the budget in tokens is a very efficient way to work. ") is None


def test_a_phrase_said_three_times_is_cut_and_the_answer_ends_on_a_complete_sentence():
    result = guard_answer(GOOD + LOOP * 4)
    assert result.text == (GOOD + LOOP).strip()  # said once, the sentence stays; its second time is the loop
    phrase = "The model reads tokens, so the model reads tokens and the model reads tokens"
    assert find_repetition(GOOD + phrase).kind == "ngram" and not degenerate(result.text)
    assert guard_answer(GOOD + phrase).text == GOOD.strip()


def test_clean_answers_pass_untouched_and_a_length_cut_ends_at_the_last_sentence():
    assert guard_answer(GOOD).text == GOOD and guard_answer(GOOD).notes == []
    assert not degenerate("Yes. Yes. Yes.")  # short sentences are not a loop
    cut = guard_answer(GOOD + "The answer is:", finish_reason="length")
    assert cut.text == GOOD.strip() and cut.trimmed_at_limit and "token limit" in cut.notes[0]


def test_the_streaming_guard_never_sends_the_repeated_sentence():
    guard = StreamingGuard()
    sent = ""
    for word in (GOOD + LOOP * 4).split(" "):
        sent += guard.feed(word + " ")
        if guard.stopped:
            break
    assert guard.stopped and sent.strip() == (GOOD + LOOP).strip()
    assert guard.result().text == (GOOD + LOOP).strip()


def test_copied_headers_are_recognised():
    assert copies_header("[4] tiny-rag (Elena Marchetti)\ndef chunk(): ...")
    assert copies_header("intro\n[1] Title (Ada)", ["[1] Title (Ada)"])
    assert not copies_header("Chunking by tokens is exact [1] (see the post).")


def test_generation_defaults_read_from_a_manifest_and_lengths_follow_the_question():
    defaults = generation_defaults({"generation": {"repetition_penalty": 1.3, "short_answer_tokens": 40}})
    assert defaults.repetition_penalty == 1.3 and defaults.frequency_penalty == GenerationDefaults().frequency_penalty
    assert generation_defaults({}) == GenerationDefaults()
    assert defaults.max_tokens_for("What is LoRA?") == 40
    assert defaults.max_tokens_for("Why chunk by tokens rather than characters?") == defaults.long_answer_tokens
    assert defaults.max_tokens_for("Why chunk by tokens?", cap=64) == 64


def test_rag_answer_uses_the_model_defaults_and_the_guard_ends_a_loop():
    llm = ScriptedLLM(answer=GOOD + LOOP * 4, json_answers={"query_expansion": {"queries": []}})
    defaults = GenerationDefaults(repetition_penalty=1.2, frequency_penalty=0.4, long_answer_tokens=60)
    service, _, _ = fake_services(fake_rag_corpus(TOPICS), llm, generation=defaults, max_answer_tokens=200)
    answer = asyncio.run(service.answer("Why should documents be chunked by tokens?"))

    assert answer.answer == (GOOD + LOOP).strip() and answer.finish_reason == "stop"
    assert any(n.startswith("repetition guard:") for n in answer.notes)
    options = llm.calls_of("chat")[0].options
    assert options["repetition_penalty"] == 1.2 and options["frequency_penalty"] == 0.4
    assert options["max_tokens"] == 60 and options["temperature"] == 0.0
    assert "\nQuestion:" in options["stop"]


def test_rag_stream_stops_at_the_loop_and_reports_it():
    llm = ScriptedLLM(answer=GOOD + LOOP * 4, json_answers={"query_expansion": {"queries": []}})
    service, _, _ = fake_services(fake_rag_corpus(TOPICS), llm)

    streamed, done = asyncio.run(collect_stream(service, "Why should documents be chunked by tokens?"))
    assert streamed.strip() == (GOOD + LOOP).strip() == done.answer
    assert streamed.count("tokenizer.") == 1 and any(n.startswith("repetition guard:") for n in done.notes)
    assert done.finish_reason == "stop"


HEADERS = ["[1] Chunk by Tokens, Not Characters (Ada Lovelace)", "[2] tiny-rag (Ada Lovelace)"]
QUOTE = "The embedding model has a hard limit of 256 tokens. Anything longer is silently truncated."


def test_a_pasted_header_line_is_removed_and_becomes_a_citation():
    result = guard_answer(f"{HEADERS[0]}\n{QUOTE}", "stop", HEADERS)
    assert result.text == f"{QUOTE} [1]" and result.pasted_headers == (1,)
    assert result.notes == ["header guard: removed a pasted passage header line ([1])"]
    # the title line without its number, and a colon after the number, are the same furniture
    title_only = f"Chunk by Tokens, Not Characters (Ada Lovelace)\n{QUOTE}"
    assert guard_answer(title_only, None, HEADERS).text == f"{QUOTE} [1]"
    assert guard_answer(f"[2]: tiny-rag (Ada Lovelace)\n{QUOTE} [1]", None, HEADERS).text == f"{QUOTE} [1]"
    # a made-up passage's header is dropped without a citation; a text with no header is left alone
    made_up = guard_answer(f"[4] Serving (Ada Lovelace)\n{QUOTE}", None, HEADERS)
    assert made_up.text == QUOTE and "a passage that does not exist" in made_up.notes[0]
    assert guard_answer(f"[4] A note on the dense side\n{QUOTE}", None, HEADERS).text == QUOTE  # no (Author)
    assert guard_answer(f"{QUOTE} [2]", None, HEADERS).text == f"{QUOTE} [2]"
    assert guard_answer(f"{HEADERS[0]}\n{QUOTE}").text == f"{HEADERS[0]}\n{QUOTE}"  # no headers given: no guard


def test_the_streaming_guard_never_sends_a_pasted_header():
    guard = StreamingGuard(HEADERS)
    sent = ""
    pieces = ("[1] Chunk by", " Tokens, Not Characters (Ada", " Lovelace)\nThe embedding model has", " a hard limit",
              " of 256 tokens. Anything longer", " is silently truncated.")  # fmt: skip
    for piece in pieces:
        sent += guard.feed(piece)
        assert "[1] Chunk" not in sent and "Lovelace)" not in sent
    sent += guard.finish("stop")
    assert sent == f"{QUOTE} [1]" and guard.result("stop").text == f"{QUOTE} [1]"
    assert guard.result("stop").pasted_headers == (1,)


def test_rag_answer_and_stream_never_show_a_pasted_header_and_cite_its_passage():
    pasted = "[1] Ada Lovelace on chunking (Ada Lovelace)\n" + TOPICS[("Ada Lovelace", "chunking")]
    llm = ScriptedLLM(answer=pasted, json_answers={"query_expansion": {"queries": []}})
    service, _, _ = fake_services(fake_rag_corpus(TOPICS), llm)
    question = "Why should documents be chunked by tokens?"
    answer = asyncio.run(service.answer(question))
    expected = TOPICS[("Ada Lovelace", "chunking")][:-1] + " [1]."  # the pasted passage, quoted and cited
    assert answer.answer == expected and answer.sources[0].cited
    assert any(n.startswith("header guard:") for n in answer.notes)

    streamed, done = asyncio.run(collect_stream(service, question))
    assert streamed == expected == done.answer and "(Ada Lovelace)" not in streamed


def test_the_answer_is_asked_with_bad_words_for_headers_unused_numbers_and_the_instructions():
    llm = ScriptedLLM(answer=GOOD, json_answers={"query_expansion": {"queries": []}})
    service, _, _ = fake_services(fake_rag_corpus(TOPICS), llm)
    answer = asyncio.run(service.answer("Why should documents be chunked by tokens?"))

    bad_words = llm.calls_of("chat")[0].options["bad_words"]
    passages = len(answer.sources)
    # the fakes' counter counts words: each title's opening is "] " + its first word
    openings = [f"] {source.title.split()[0]}" for source in answer.sources]
    unused = [f"[{n}" for n in range(passages + 1, 10)]
    assert passages and bad_words == [*dict.fromkeys(openings), *unused, "You are the LLM Twin"]
    assert TWIN_SYSTEM_PROMPT.startswith(SYSTEM_PROMPT_OPENING) and SYSTEM_PROMPT_OPENING in bad_words
    assert not any(f"[{n}" in bad_words for n in range(1, passages + 1))  # the valid citations stay allowed
    asyncio.run(collect_stream(service, "Why should documents be chunked by tokens?"))
    assert llm.calls_of("stream")[0].options["bad_words"] == bad_words  # streamed answers alike

    unblocked_llm = ScriptedLLM(answer=GOOD, json_answers={"query_expansion": {"queries": []}})
    unblocked, _, _ = fake_services(fake_rag_corpus(TOPICS), unblocked_llm, block_passage_headers=False)
    asyncio.run(unblocked.answer("Why should documents be chunked by tokens?"))
    assert "bad_words" not in unblocked_llm.calls_of("chat")[0].options


def test_the_client_sends_bad_words_as_the_engines_extra_parameter():
    from llm_engineering.infrastructure.llm.client import LLMClient
    from llm_engineering.settings import Settings

    client = LLMClient(Settings(llm_base_url="http://127.0.0.1:9/v1"))
    _, args = client._completion_args({"bad_words": ("[1] Chunk by Tokens",), "repetition_penalty": 1.1})
    assert args["extra_body"] == {"bad_words": ["[1] Chunk by Tokens"], "repetition_penalty": 1.1}
    _, plain = client._completion_args({})
    assert plain["extra_body"] is None


def test_a_misspelled_title_line_under_a_passage_author_is_removed():
    text = f"Chunk by Token, Not Character (Ada Lovelace)\n{QUOTE} [1]"
    result = guard_answer(text, "stop", HEADERS)
    assert result.text == f"{QUOTE} [1]" and result.notes[0].startswith("header guard:")
    # prose that ends with someone else's name in parentheses stays
    kept = f"{QUOTE} (Grace Hopper)"
    assert guard_answer(kept, "stop", HEADERS).text == kept
