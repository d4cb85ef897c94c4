"""The evaluation service end to end on fakes of every port (fast): scripted scorers, a scripted 'served' model,
a scripted judge (and Ragas through it), retrieval over an in-memory corpus — then the report, whose plots are
checked in a real headless Chromium."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from llm_engineering.application.evaluation.config import parse_evaluation_config
from llm_engineering.application.evaluation.report_html import write_report
from llm_engineering.application.evaluation.results import JudgeEndpoint, ModelUnderTest
from llm_engineering.application.evaluation.service import EvaluationDeps, EvaluationService, plan_evaluation
from tests.fakes import (
    FakeScorer,
    ScriptedLLM,
    fake_container,
    fake_rag_corpus,
    unreachable_llm,
)

TINY_DATASET = Path(__file__).parents[2] / "integration" / "evaluation" / "tiny_dataset"
AUTHOR = "Ada Example"
TOPICS = {
    (AUTHOR, "tracing"): "Trace every prompt with its template version, inputs and outputs of each step.",
    (AUTHOR, "chunking"): "Chunk by tokens of the embedding model, never by characters, or the tail is lost.",
}
LINK = "https://example.org/example/tracing"


def _answer(messages) -> str:
    """A model that copies the first passage it was given and cites it (or says something generic)."""
    text = messages[-1]["content"]
    if "Context:" in text and "[1] " in text:
        passage = text.split("[1] ", 1)[1].split("\n", 1)[1].split("\n\n", 1)[0]
        return f"{passage.split('.')[0]}. [1]"
    return "I think the answer is that it depends on the setup."


@pytest.fixture
def qa_file(tmp_path) -> Path:
    rows = [
        {"question": "What should a trace contain?", "link": LINK, "kind": "concept",
         "answer": "Every prompt with its template version, inputs and outputs of each step.",
         "evidence": "Trace every prompt with its template version"},
        {"question": "tracing template version", "link": LINK, "kind": "keyword"},
    ]  # fmt: skip
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _deps(judge_llm, corpus) -> EvaluationDeps:
    scorers = {"base": 2.0, "twin": 1.0}  # NLL per word: the twin finds the author's text likelier

    class ScriptedRuntime:
        """A ModelRuntime of fakes: scripted answers, word-count scorers, a scripted judge."""

        generation_backend = "scripted"

        def scorer(self, model: ModelUnderTest) -> FakeScorer:
            fake = FakeScorer(model.name)
            nll = scorers[model.name]
            fake.answer_logprobs = lambda messages, answer: (-nll * len(answer.split()), len(answer.split()))
            return fake

        @contextmanager
        def serve(self, model):
            yield ScriptedLLM(answer=_answer)

        @contextmanager
        def judge(self):
            yield JudgeEndpoint(llm=judge_llm, base_url="http://judge.invalid/v1", model="scripted-judge")

    container = fake_container(corpus, judge_llm)
    return EvaluationDeps(
        runtime=ScriptedRuntime(),
        retriever=container.retriever(),
        rag_service=container.build_rag_service,
        search=container.search_service,
        authors=container.authors,
        token_counter=container.prompt_token_counter,
        embedder=container.embedder,
    )


def _plan(qa_file, tmp_path):
    config = parse_evaluation_config(
        {"voice": {"max_samples": 4, "max_pairs": 4}, "generation": {"max_samples": 3, "concurrency": 2},
         "judge": {"max_samples": 2}, "rag": {"kinds": [], "max_questions": 5, "k": 2},
         "ragas": {"max_questions": 1, "llm_metrics": ["faithfulness", "context_recall"], "timeout_s": 20}}
    )  # fmt: skip
    models = [
        ModelUnderTest(name="base", spec="base", path="/ckpt/base"),
        ModelUnderTest(name="twin", spec="twin", path="/ckpt/twin", registry_name="llm-twin", registry_version="v0001"),
    ]
    return plan_evaluation(config, models, TINY_DATASET, qa_file, None, tmp_path / "reports", tmp_path / "out")


def _run(service, plan):
    from llm_engineering.application.evaluation.promotion import decide_for_plan
    from llm_engineering.application.evaluation.report import build_report, build_summary

    voice = service.score_voice(plan)
    generations = service.generate(plan)
    judge = service.judge(plan, generations)
    retrieval = service.retrieval(plan)
    summary = build_summary([m.name for m in plan.models], voice, generations, judge)
    promotion = decide_for_plan(summary, "twin", "v0001", "voice.perplexity", 0.0, None)
    return build_report(plan, voice, generations, judge, retrieval, promotion)


def test_every_phase_on_fakes_then_the_report(qa_file, tmp_path):
    judge = ScriptedLLM(
        json_answers={
            "judge_verdict": {"accuracy": 2, "style": 2},
            "judge_pairwise": {"winner": "B"},
            # Ragas' faithfulness through the judge: its two structured outputs, by their pydantic class names.
            "StatementGeneratorOutput": {"statements": ["A trace holds the template version."]},
            "NLIStatementOutput": {"statements": [
                {"statement": "A trace holds the template version.", "reason": "in context", "verdict": 1}]},
        }
    )  # fmt: skip
    plan = _plan(qa_file, tmp_path)
    assert [q.question for q in plan.questions] == ["What should a trace contain?"]  # only those with an answer
    report = _run(EvaluationService(_deps(judge, fake_rag_corpus(TOPICS))), plan)

    base, twin = report.summary["base"], report.summary["twin"]
    assert twin["voice.perplexity"] < base["voice.perplexity"]
    assert base["voice.dpo_reward_accuracy"] is None  # the base is the reference: no implicit reward
    assert report.promotion.promote and "beats base" in report.promotion.reason
    # RAG: the answer copies and cites passage 1, which the capture read back from the real prompt
    rag = report.generations[1].rag_answers[0]
    assert rag.contexts and rag.context_links[0] == LINK and rag.reference_contexts
    assert rag.metrics["rag.citation_valid_rate"] == 1.0 and rag.metrics["rag.citation_supported_rate"] == 1.0
    assert twin["rag.id_context_recall"] == 1.0 and twin["rag.rouge_l"] > 0.3
    assert twin["rag.nonllm_context_recall"] == 1.0
    # judge: always "B" -> no consistent verdict; Ragas faithfulness scored, context_recall failed honestly (NaN)
    assert twin["judge.accuracy"] == 2 and twin["judge.agreement"] == 0.0
    assert twin["rag.faithfulness"] == 1.0 and twin["rag.context_recall"] is None
    assert twin["rag.context_recall_failed"] == 1.0 and "context_recall_error" in str(rag.metrics)
    assert report.retrieval["overall"]["hybrid"]["hit@1"] == 1.0
    assert twin["style.distance"] is not None  # (speed: scripted answers take ~0 s; checked in the slow test)

    from llm_engineering.application.evaluation.report import best_index, text_table

    table = text_table(report, keys=["voice.perplexity", "rag.rouge_l"], models=["base", "twin"])
    assert "held-out perplexity" in table and "ROUGE-L" in table and "lower" in table
    assert best_index("voice.perplexity", [2.0, 1.0]) == 1 and best_index("voice.perplexity", [1.0, 1.0]) is None

    paths = write_report(report)
    data = json.loads(Path(paths["json"]).read_text())
    assert data["summary"]["twin"]["voice.perplexity"] == pytest.approx(twin["voice.perplexity"])
    assert Path(paths["metrics.png"]).stat().st_size > 1000 and "per_question.png" in paths
    html = Path(paths["html"]).read_text()
    assert "data:image/png;base64," in html and "beats base" in html


def test_an_unreachable_judge_skips_judge_metrics_and_keeps_the_rest(qa_file, tmp_path):
    plan = _plan(qa_file, tmp_path)
    report = _run(EvaluationService(_deps(unreachable_llm(), fake_rag_corpus(TOPICS))), plan)
    skipped = {s.metric: s.reason for s in report.skipped}
    assert {"judge.accuracy", "judge.agreement", "rag.faithfulness", "rag.context_recall"} <= set(skipped)
    assert "judge unreachable" in skipped["judge.accuracy"] and "LLM_BASE_URL" in skipped["judge.accuracy"]
    assert report.judge.status == "skipped"
    assert report.summary["twin"]["voice.perplexity"] is not None and report.summary["twin"]["rag.rouge_l"] is not None


def test_bad_input_is_a_clear_error(tmp_path, qa_file):
    from llm_engineering.domain.errors import ConfigurationError

    config = parse_evaluation_config({})
    model = [ModelUnderTest(name="base", spec="base", path="/x")]
    with pytest.raises(ConfigurationError, match="QA file .*missing.jsonl does not exist"):
        plan_evaluation(config, model, TINY_DATASET, tmp_path / "missing.jsonl", None, tmp_path)
    with pytest.raises(ConfigurationError, match="is not a generated dataset folder"):
        plan_evaluation(config, model, tmp_path, qa_file, None, tmp_path)
    train_only = tmp_path / "train-only"
    train_only.mkdir()
    shutil.copy(TINY_DATASET / "instruct_train.jsonl", train_only / "instruct_train.jsonl")
    with pytest.raises(ConfigurationError, match="instruct_test.jsonl is missing or empty"):
        plan_evaluation(config, model, train_only, qa_file, None, tmp_path)
    with pytest.raises(ConfigurationError, match="no model to evaluate"):
        plan_evaluation(config, [], TINY_DATASET, qa_file, None, tmp_path)


@pytest.mark.browser
def test_the_report_renders_in_chromium_with_every_plot_loaded(qa_file, tmp_path):
    from llm_engineering.infrastructure.browser import BrowserSession
    from llm_engineering.settings import Settings

    judge = ScriptedLLM(json_answers={"judge_verdict": {"accuracy": 3, "style": 2}, "judge_pairwise": {"winner": "A"}})
    report = _run(EvaluationService(_deps(judge, fake_rag_corpus(TOPICS))), _plan(qa_file, tmp_path))
    from llm_engineering.infrastructure.ml.model_runtime import training_curves

    report.training = {"version": "v0001", "curves": {"sft": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]}}
    assert training_curves(None) == {}
    paths = write_report(report)
    browser = BrowserSession(Settings())
    try:
        browser.open(Path(paths["html"]).resolve().as_uri())
        images = browser.run_script(
            "return Array.from(document.images).map(i => [i.dataset.plot, i.complete, i.naturalWidth]);"
        )
        title = browser.run_script("return document.title;")
    finally:
        browser.close()
    assert "LLM Twin evaluation" in title
    assert sorted(name for name, _, _ in images) == ["metrics.png", "per_question.png", "training_loss.png"]
    assert all(complete and width > 0 for _, complete, width in images), images


def test_without_ragas_the_built_in_metrics_run_and_the_report_says_so(qa_file, tmp_path, monkeypatch):
    from llm_engineering.application.evaluation import service as service_module

    monkeypatch.setattr(service_module, "ragas_available", lambda: (False, "ImportError: no module named ragas"))
    judge = ScriptedLLM(json_answers={"judge_verdict": {"accuracy": 2, "style": 2}, "judge_pairwise": {"winner": "A"}})
    plan = _plan(qa_file, tmp_path)
    with monkeypatch.context() as patched:
        from llm_engineering.application.evaluation import ragas_adapters

        patched.setattr(ragas_adapters, "ragas_available", lambda: (False, "ImportError: no module named ragas"))
        report = _run(EvaluationService(_deps(judge, fake_rag_corpus(TOPICS))), plan)
    twin = report.summary["twin"]
    assert twin["rag.nonllm_context_recall"] == 1.0 and twin["rag.rouge_l"] > 0.3  # ours ran
    skipped = {s.metric: s.reason for s in report.skipped}
    assert "Ragas cannot be imported (ImportError: no module named ragas)" in skipped["rag.faithfulness"]
    assert any("not Ragas: Ragas cannot be imported" in note for note in report.notes)
