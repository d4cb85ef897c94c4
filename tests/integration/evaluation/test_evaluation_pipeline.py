"""`poe run-evaluation-pipeline` end to end (slow): the real ZenML pipeline, the twin served by its own real vLLM
server, the session's vLLM server as the (weak) judge, the sample corpus in a real warehouse and vector store, a
tiny dataset and a registry version made from the packaged model. Then the report is read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llm_engineering.settings import PROJECT_ROOT
from tests.integration.evaluation.helpers import TINY_DATASET, make_registry_version

pytestmark = pytest.mark.slow


def _config(tmp_path: Path) -> Path:
    data = yaml.safe_load((PROJECT_ROOT / "configs" / "evaluating.yaml").read_text())
    data.update(
        models=["twin"],
        voice={"max_samples": 4, "max_pairs": 4, "batch_size": 4},
        generation={"backend": "vllm", "max_samples": 3, "max_tokens": 48, "concurrency": 4},
        judge={"max_samples": 2, "max_tokens": 32, "timeout_s": 30, "start_local_server": False},
        rag={"max_questions": 3, "k": 2, "max_answer_tokens": 48},
        ragas={"max_questions": 1, "llm_metrics": ["faithfulness"], "timeout_s": 40, "max_tokens": 128,
               "budget_s": 120},
    )  # fmt: skip
    path = tmp_path / "evaluating.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _evaluate(settings, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATA_DIR": str(settings.data_dir),
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DATABASE": settings.mongodb_database,
        "MONGODB_EMBEDDED": "false",
        "LLM_BASE_URL": settings.llm_base_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "tools.evaluate", *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip


def test_pipeline_against_the_real_vllm_server(rag_corpus_settings, prepared_model_dir, tmp_path):
    settings = rag_corpus_settings
    make_registry_version(settings.models_dir, prepared_model_dir, "v0001")
    output = tmp_path / "report"
    run = _evaluate(
        settings, "--config", str(_config(tmp_path)), "--dataset", str(TINY_DATASET), "--output", str(output)
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    assert "135M-parameter judge is weak" in run.stderr
    report = json.loads((output / "report.json").read_text())
    twin, base = report["summary"]["twin"], report["summary"]["base"]
    # judge-free: the same weights give the same perplexity; the base is the DPO reference
    assert twin["voice.perplexity"] == pytest.approx(base["voice.perplexity"], rel=1e-4)
    assert twin["voice.perplexity"] > 1.0
    assert base["voice.dpo_reward_accuracy"] is None and twin["voice.dpo_reward_accuracy"] is not None
    # generations through the twin's own vLLM server, RAG over the real corpus, citations checked
    generation = report["generations"][0]
    assert generation["backend"] == "vllm" and generation["error"] is None
    assert len(generation["voice_answers"]) == 3 and all(a["answer"] for a in generation["voice_answers"])
    assert len(generation["rag_answers"]) == 3 and all(a["contexts"] for a in generation["rag_answers"])
    assert twin["style.distance"] is not None and twin["speed.tokens_per_s"] > 0
    assert twin["rag.id_context_recall"] is not None and twin["rag.rouge_l"] is not None
    assert report["retrieval"]["overall"]["hybrid"]["hit@10"] > 0.5
    # the weak judge answered (or failed honestly): a status, an agreement rate or a reason, never a crash
    assert report["judge"]["status"] == "ok" and "judge.agreement" in twin
    assert "rag.faithfulness" in twin
    # promotion: identical weights do not beat the base
    assert report["promotion"]["promote"] is False and "does not beat base" in report["promotion"]["reason"]
    for name in ("report.html", "metrics.png", "training_loss.png", "per_question.png"):
        assert (output / name).stat().st_size > 1000, name
    assert "report:" in run.stdout and str(output / "report.html") in run.stdout

    from zenml.client import Client

    zenml_run = Client().get_pipeline("evaluating").last_run
    assert set(zenml_run.steps) == {
        "prepare_evaluation", "score_voice", "generate_answers", "judge_answers",
        "evaluate_retrieval_metrics", "promote_twin", "write_evaluation_report",
    }  # fmt: skip
    metadata = zenml_run.steps["write_evaluation_report"].run_metadata
    assert metadata["metrics_twin"]["voice.perplexity"] == pytest.approx(twin["voice.perplexity"], rel=1e-5)


def test_a_missing_model_or_qa_file_is_a_clear_error(rag_corpus_settings, tmp_path):
    config = _config(tmp_path)
    missing_model = _evaluate(rag_corpus_settings, "--config", str(config), "--models", "llm-twin:v0042",
                              "--dataset", str(TINY_DATASET), "--no-zenml")  # fmt: skip
    assert missing_model.returncode != 0 and "llm-twin:v0042" in missing_model.stderr
    assert "Traceback" not in missing_model.stderr
    missing_qa = _evaluate(rag_corpus_settings, "--config", str(config), "--qa", str(tmp_path / "nope.jsonl"),
                           "--dataset", str(TINY_DATASET), "--no-zenml")  # fmt: skip
    assert missing_qa.returncode != 0 and "nope.jsonl does not exist" in missing_qa.stderr
