"""Each judge-free metric on tiny, hand-checked cases: stylometry, ROUGE / string similarity, context precision
and recall (ours and Ragas' non-LLM ones), citation validity, perplexity and DPO implicit-reward accuracy."""

from __future__ import annotations

import asyncio
import math

import pytest

from llm_engineering.application.evaluation import stylometry as st
from llm_engineering.application.evaluation import text_metrics as tm
from llm_engineering.application.evaluation.voice import perplexity, reward_accuracy, score_voice, style_metrics
from tests.fakes import FakeScorer


# --- stylometry -----------------------------------------------------------------------------------------------------
def test_jensen_shannon_hand_checked():
    assert st.jensen_shannon([1, 0], [1, 0]) == 0.0
    assert st.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    # m = [0.75, 0.25]; KL(p||m) = 0.5 log2(2/3) + 0.5 log2(2) = 0.20752; KL(q||m) = log2(4/3) = 0.41504
    assert st.jensen_shannon([0.5, 0.5], [1, 0]) == pytest.approx((0.207519 + 0.415037) / 2, abs=1e-5)
    assert st.jensen_shannon([0, 0], [0, 0]) == 0.0 and st.jensen_shannon([0, 0], [1, 0]) == 1.0


def test_style_profile_of_toy_texts():
    profile = st.style_profile(["The cat sat on the mat. It was warm [1].", "Dogs bark."])
    # sentences: 6 words, 3 words, 2 words; the citation marker is not a word
    assert profile.sentences == 3 and profile.words == 11
    assert profile.sentence_length_mean == pytest.approx(11 / 3)
    assert profile.function_word_share == pytest.approx(5 / 11)  # the, on, the, it, was
    dist = dict(zip(st.FUNCTION_WORDS, profile.function_words, strict=True))
    assert dist["the"] == pytest.approx(0.4) and dist["on"] == dist["it"] == dist["was"] == pytest.approx(0.2)


def test_mattr_is_the_type_token_ratio_for_short_texts_and_stable_for_long_ones():
    assert st.mattr(["a", "b", "a", "c"]) == pytest.approx(0.75)
    repeated = [f"w{i % 10}" for i in range(500)]
    assert st.mattr(repeated, window=50) == pytest.approx(10 / 50)


def test_style_distance_is_zero_for_the_same_texts_and_grows_with_a_different_voice():
    author = [
        "I tried it on my laptop, and it was slower than I expected. The reason was simple: the CPU had no spare "
        "cycles. So I went back to the plain setup, which I should have kept from the start.",
    ]
    shouty = ["BUY NOW!!! Amazing deals!!! Limited offer!!! Click here!!! Best price ever!!!"]
    same = st.compare_styles(author, author)
    assert same["distance"] == 0.0 and all(v == 0.0 for v in same.values())
    other = st.compare_styles(shouty, author)
    assert other["distance"] > 0.3 and other["function_word_jsd"] == pytest.approx(1.0)  # none in common
    assert style_metrics([], author) == {"style.distance": None}


# --- reference-based text metrics ---------------------------------------------------------------------------------
def test_rouge_and_string_similarity_hand_checked():
    # LCS of "the cat on the mat" (5) in "the cat sat on the mat" (6): P = 1, R = 5/6 -> F1 = 10/11
    assert tm.rouge_l("the cat on the mat", "the cat sat on the mat") == pytest.approx(10 / 11)
    assert tm.rouge_n("the cat", "the dog", 1) == pytest.approx(0.5)
    assert tm.rouge_l("", "anything") == 0.0
    # kitten -> sitting: 3 edits over 7 characters
    assert tm.levenshtein_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert tm.levenshtein_distance("kitten", "sitting") == 3


def test_context_precision_and_recall_with_reference_hand_checked():
    ref = ["alpha beta gamma delta"]
    retrieved = ["alpha beta gamma delta", "zzzz qqqq", "alpha beta gamma delt"]
    # relevant at ranks 1 and 3: AP = (1/1 + 2/3) / 2
    assert tm.context_precision_with_reference(retrieved, ref) == pytest.approx((1 + 2 / 3) / 2)
    assert tm.context_recall_with_reference(retrieved, ref) == 1.0
    assert tm.context_recall_with_reference(["zzzz qqqq"], ref) == 0.0
    assert tm.context_precision_with_reference([], ref) is None
    assert tm.id_precision(["a", "b", "a"], ["a"]) == pytest.approx(2 / 3) and tm.id_recall(["b"], ["a"]) == 0.0


def test_ragas_non_llm_metrics_agree_with_ours():
    pytest.importorskip("ragas")
    from llm_engineering.application.evaluation.ragas_adapters import ragas_nonllm_metrics
    from llm_engineering.application.evaluation.results import GeneratedAnswer

    answer = GeneratedAnswer(
        id="1",
        kind="rag",
        question="q",
        answer="Hybrid search reached a hit@10 of 0.88 [1].",
        reference="Hybrid retrieval with RRF reached a hit@10 of 0.88.",
        contexts=["hybrid with RRF: hit@10 of 0.88", "something else entirely", "hybrid with RRF: hit@10 of 0.8"],
        reference_contexts=["hybrid with RRF: hit@10 of 0.88"],
    )
    ragas = asyncio.run(ragas_nonllm_metrics(answer, 0.5))
    assert ragas["rag.nonllm_context_precision"] == pytest.approx(
        tm.context_precision_with_reference(answer.contexts, answer.reference_contexts), abs=1e-6
    )
    assert ragas["rag.nonllm_context_recall"] == tm.context_recall_with_reference(
        answer.contexts, answer.reference_contexts
    )
    assert ragas["rag.string_similarity"] == pytest.approx(tm.levenshtein_similarity(answer.answer, answer.reference))
    assert 0.5 < ragas["rag.rouge_l"] <= 1.0  # Ragas' ROUGE stems and tokenises a little differently


# --- citations -----------------------------------------------------------------------------------------------------
def test_citation_validity():
    passages = ["Hybrid search with RRF reached a hit@10 of 0.88 on 150 questions.", "Paged attention stores blocks."]
    good = tm.citation_validity("Hybrid search reached a hit@10 of 0.88 [1].", passages)
    assert good["valid_rate"] == 1.0 and good["supported_rate"] == 1.0 and good["invalid_citations"] == 0
    wrong = tm.citation_validity("Hybrid search reached a hit@10 of 0.88 [2]. Bananas are yellow [5].", passages)
    assert wrong["citations"] == 2 and wrong["invalid_citations"] == 1 and wrong["valid_rate"] == 0.5
    assert wrong["supported_rate"] == 0.0  # passage 2 says nothing of hit@10
    none = tm.citation_validity("No citation at all.", passages)
    assert none["valid_rate"] is None and none["supported_rate"] is None  # nothing to rate: not a flattering 1.0


# --- perplexity and DPO implicit reward -------------------------------------------------------------------------------
def test_perplexity_is_token_weighted():
    # two answers: -2 nats over 2 tokens and -6 nats over 2 tokens -> mean NLL 2 -> perplexity e^2
    ppl, nll = perplexity([-2.0, -6.0], [2, 2])
    assert nll == pytest.approx(2.0) and ppl == pytest.approx(math.exp(2.0))
    assert perplexity([], []) == (None, None)


def test_reward_accuracy_hand_checked():
    reference = [(-10.0, -10.0), (-10.0, -10.0), (-5.0, -5.0)]
    # pair 1: chosen up 2, rejected down 1 -> margin 3*beta; pair 2: chosen down 1 -> margin -1*beta; pair 3: tie
    policy = [(-8.0, -11.0), (-11.0, -10.0), (-5.0, -5.0)]
    accuracy, margin = reward_accuracy(policy, reference, beta=0.1)
    assert accuracy == pytest.approx(1 / 3) and margin == pytest.approx((0.3 - 0.1 + 0.0) / 3)


def test_score_voice_with_a_fake_scorer():
    instruct = [
        {"instruction": "Q1?", "answer": "one two", "messages": [
            {"role": "system", "content": "s"}, {"role": "user", "content": "Q1?"},
            {"role": "assistant", "content": "one two"}]},
        {"instruction": "Q2?", "answer": "three four five six"},
    ]  # fmt: skip
    pairs = [{"prompt": [{"role": "user", "content": "Q1?"}], "chosen": "author text", "rejected": "base text"}]
    scorer = FakeScorer(scores={"one two": (-2.0, 2), "author text": (-1.0, 2), "base text": (-3.0, 2)})
    result, policy = score_voice("twin", scorer, instruct, pairs, reference_pairs=[(-2.0, -2.0)], beta=0.1)
    # "three four five six" is unknown: -1 per word -> total -6 over 6 tokens -> NLL 1 -> perplexity e
    assert result.metrics["voice.perplexity"] == pytest.approx(math.e)
    assert result.metrics["voice.preference_accuracy"] == 1.0 and policy == [(-1.0, -3.0)]
    # reward(chosen) = 0.1 * (-1 + 2) = 0.1, reward(rejected) = 0.1 * (-3 + 2) = -0.1 -> margin 0.2
    assert result.metrics["voice.dpo_reward_accuracy"] == 1.0
    assert result.metrics["voice.dpo_reward_margin"] == pytest.approx(0.2)
    # the prompt scored is the chat before the answer, in the training shape
    assert scorer.scored[0][0][-1] == {"role": "user", "content": "Q1?"}
    assert scorer.scored[1][0][0]["role"] == "system"  # built from instruction + answer: no-context system prompt


def test_new_writing_is_scored_apart_when_a_refresh_names_it():
    instruct = [
        {"instruction": "Old?", "answer": "one two", "document_id": "old"},
        {"instruction": "New?", "answer": "three four five six", "document_id": "new"},
    ]
    scorer = FakeScorer(scores={"one two": (-4.0, 2)})  # the new answer is unknown: -1 per word, 4 tokens
    result, _ = score_voice("twin", scorer, instruct, [], reference_pairs=None, beta=0.1, focus_documents=["new"])
    assert result.metrics["voice.perplexity"] == pytest.approx(math.exp(8 / 6))  # both answers
    assert result.metrics["voice.new_writing_perplexity"] == pytest.approx(math.e)  # the new one alone
    assert result.metrics["voice.new_writing_answers"] == 1.0
    plain, _ = score_voice("twin", scorer, instruct, [], reference_pairs=None, beta=0.1)
    assert plain.metrics["voice.new_writing_perplexity"] is None and plain.metrics["voice.new_writing_answers"] is None
