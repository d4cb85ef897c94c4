"""Answer metrics per question and per model, the promotion gate (voice AND answering), and the report that shows
the answers side by side and names the deciding rule."""

from __future__ import annotations

from llm_engineering.application.evaluation.answer_quality import answer_metrics, answer_rates, fact_recall
from llm_engineering.application.evaluation.promotion import decide_gate
from llm_engineering.application.evaluation.results import GeneratedAnswer, GenerationResult
from llm_engineering.application.evaluation.text_metrics import citation_validity

PASSAGE = "Chunk documents by tokens: the model's window is counted in tokens, not characters."
PROMPT = [
    {"role": "system", "content": "twin"},
    {"role": "user", "content": f"Context:\n[1] Chunking (Ada)\n{PASSAGE}\n\nQuestion: Why tokens?"},
]


def _answer(text: str, notes: list[str] | None = None, reference: str = "The window is counted in tokens."):
    answer = GeneratedAnswer(
        id="qa-1", kind="rag", question="Why tokens?", prompt=PROMPT, answer=text, reference=reference,
        contexts=[PASSAGE], notes=notes or [],
    )  # fmt: skip
    answer.metrics["citations"] = citation_validity(text, answer.contexts, 0.5)
    answer.metrics.update(answer_metrics(answer))
    return answer


def test_each_answer_gets_its_flags_and_recall():
    good = _answer("The model's window is counted in tokens, not characters [1].")
    assert good.metrics["answer.fact_recall"] == 1.0 and good.metrics["answer.cited"] == 1.0
    assert good.metrics["answer.supported"] == 1.0
    assert not good.metrics["answer.degenerate"] and not good.metrics["answer.copied_header"]

    header = _answer("[1] Chunking (Ada)\nChunk documents by tokens")
    assert header.metrics["answer.copied_header"] == 1.0 and header.metrics["answer.cited"] == 1.0

    guarded = _answer("Tokens matter.", notes=["repetition guard: the answer started repeating a sentence"])
    assert guarded.metrics["answer.degenerate"] == 1.0 and guarded.metrics["answer.served_degenerate"] == 0.0
    assert _answer("").metrics["answer.empty"] == 1.0
    assert fact_recall("windows of tokens", "The window counts tokens.") == 2 / 3  # plural 's' ignored


def test_a_quoted_link_line_of_the_passage_is_not_a_pasted_header():
    from llm_engineering.application.evaluation.answer_quality import passage_headers

    link = "[chunking.html](https://example.org/chunking.html)"
    answer = _answer(f"Chunk documents by tokens [1].\n\n{link}")
    answer.prompt = [PROMPT[0], {"role": "user", "content": f"Context:\n[1] Chunking (Ada)\n{PASSAGE}\n{link}"
                                 "\n\nQuestion: Why tokens?"}]  # fmt: skip
    assert passage_headers(answer) == ["[1] Chunking (Ada)"]
    answer.metrics.update(answer_metrics(answer))
    assert answer.metrics["answer.served_copied_header"] == 0.0


def test_rates_per_model_exclude_failed_requests():
    answers = [
        _answer("The window is counted in tokens [1]."),
        _answer("[1] Chunking (Ada)"),
        GeneratedAnswer(id="qa-3", kind="rag", question="q", error="timeout"),
    ]
    rates = answer_rates(answers)
    assert rates["answer.answered"] == 2.0 and rates["answer.copied_header_rate"] == 0.5
    assert rates["answer.cited_rate"] == 1.0 and rates["answer.fact_recall"] is not None


VOICE_BETTER = {"voice.perplexity": 9.0}
BASE = {
    "voice.perplexity": 12.0,
    "answer.fact_recall": 0.30,
    "answer.supported_rate": 0.40,
    "answer.degenerate_rate": 0.2,
}


def test_a_candidate_that_regresses_on_answering_is_refused_with_the_deciding_rule():
    twin = {**VOICE_BETTER, "answer.fact_recall": 0.15, "answer.supported_rate": 0.45, "answer.degenerate_rate": 0.1}
    decision = decide_gate({"base": BASE, "twin": twin}, "twin", "v0002", "voice.perplexity", 0.0, None)
    assert not decision.promote
    assert decision.deciding_rule == "answering vs base: answer.fact_recall"
    assert "regresses on reference-fact recall" in decision.reason and "0.15 vs 0.3" in decision.reason
    voice = next(r for r in decision.rules if r["rule"] == "voice vs base")
    assert voice["passed"] and voice["candidate"] == 9.0


def test_a_candidate_better_on_voice_and_within_tolerance_is_promoted():
    twin = {**VOICE_BETTER, "answer.fact_recall": 0.29, "answer.supported_rate": 0.38, "answer.degenerate_rate": 0.2}
    decision = decide_gate({"base": BASE, "twin": twin}, "twin", "v0002", "voice.perplexity", 0.0, None)
    assert decision.promote and decision.deciding_rule == "all" and len(decision.rules) == 4
    more_loops = {**twin, "answer.degenerate_rate": 0.25}
    refused = decide_gate({"base": BASE, "twin": more_loops}, "twin", "v0002", "voice.perplexity", 0.0, None)
    assert not refused.promote and refused.deciding_rule.endswith("answer.degenerate_rate")


def test_the_candidate_must_beat_production_too_and_answering_must_be_measured():
    twin = {**VOICE_BETTER, "answer.fact_recall": 0.35, "answer.supported_rate": 0.5, "answer.degenerate_rate": 0.0}
    summary = {"base": BASE, "twin": twin, "production": {"voice.perplexity": 8.5}}
    decision = decide_gate(summary, "twin", "v0002", "voice.perplexity", 0.0, "v0001")
    assert not decision.promote and decision.deciding_rule == "voice vs production (v0001)"
    assert "does not beat production (v0001)" in decision.reason
    unmeasured = decide_gate({"base": {"voice.perplexity": 12.0}, "twin": VOICE_BETTER}, "twin", "v2",
                             "voice.perplexity", 0.0, None)  # fmt: skip
    assert not unmeasured.promote and unmeasured.deciding_rule == "answering measured"
    voice_only = decide_gate({"base": {"voice.perplexity": 12.0}, "twin": VOICE_BETTER}, "twin", "v2",
                             "voice.perplexity", 0.0, None, answering=False)  # fmt: skip
    assert voice_only.promote


def test_a_refresh_is_judged_against_production_on_the_new_writing():
    twin = {**VOICE_BETTER, "answer.fact_recall": 0.35, "answer.supported_rate": 0.5, "answer.degenerate_rate": 0.0}
    # worse than production over the whole test split, better on the new writing's held-out answers
    summary = {
        "base": BASE,
        "twin": {**twin, "voice.new_writing_perplexity": 10.0},
        "production": {"voice.perplexity": 8.5, "voice.new_writing_perplexity": 14.0},
    }
    args = ("twin", "v0002", "voice.perplexity", 0.0, "v0001")
    decision = decide_gate(summary, *args, production_metric="voice.new_writing_perplexity")
    assert decision.promote
    rule = next(r for r in decision.rules if r["rule"] == "voice vs production (v0001)")
    assert rule["metric"] == "voice.new_writing_perplexity" and rule["baseline_value"] == 14.0
    assert next(r for r in decision.rules if r["rule"] == "voice vs base")["metric"] == "voice.perplexity"
    worse = {**summary, "twin": {**twin, "voice.new_writing_perplexity": 15.0}}
    refused = decide_gate(worse, *args, production_metric="voice.new_writing_perplexity")
    assert not refused.promote and refused.deciding_rule == "voice vs production (v0001)"
    # no held-out new writing measured: the whole split decides, as without a focus
    unfocused = {**summary, "production": {"voice.perplexity": 8.5}}
    assert not decide_gate(unfocused, *args, production_metric="voice.new_writing_perplexity").promote


def test_the_report_shows_answers_side_by_side_and_the_gate(tmp_path):
    from llm_engineering.application.evaluation.answer_quality import side_by_side
    from llm_engineering.application.evaluation.report import EvaluationReport
    from llm_engineering.application.evaluation.report_html import render_html

    base = GenerationResult(model="base", backend="fake", rag_answers=[_answer("<b>loop</b> loop")])
    twin = GenerationResult(model="twin", backend="fake", rag_answers=[_answer("Counted in tokens [1].")])
    twin_summary = {**VOICE_BETTER, "answer.fact_recall": 0.1, "answer.supported_rate": 1.0,
                    "answer.degenerate_rate": 0.0}  # fmt: skip
    decision = decide_gate({"base": BASE, "twin": twin_summary}, "twin", "v1", "voice.perplexity", 0.0, None)
    report = EvaluationReport(
        version="eval-x", created_at="now", output_dir=str(tmp_path), models=[], dataset={},
        qa={"answered": 1, "with_reference": 1}, summary={"base": BASE, "twin": twin_summary},
        generations=[base, twin], answers=side_by_side([base, twin]), promotion=decision,
    )  # fmt: skip
    html = render_html(report, {})
    assert "Answers side by side" in html and "Counted in tokens [1]." in html
    assert "&lt;b&gt;loop&lt;/b&gt;" in html  # autoescaped
    assert "deciding rule: answering vs base: answer.fact_recall" in html and "not promoted" in html
    assert report.answers[0]["twin"]["cited"] and report.answers[0]["base"]["answer"] == "<b>loop</b> loop"
