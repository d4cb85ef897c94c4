"""Retrieval evaluation: metrics on a tiny hand-checked case, and the CLI over the shipped sample QA set."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from llm_engineering.application.evaluation.retrieval import (
    QAItem,
    evaluate_retrieval,
    load_qa,
    metrics,
    rank_of,
    write_evaluation,
)
from llm_engineering.domain.chunks import Chunk, RetrievalResult, RetrievedChunk
from llm_engineering.domain.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).parents[2]
SAMPLE = PROJECT_ROOT / "data" / "sample"


def _hit(doc: int, link: str, rank: int, position: int = 0) -> RetrievedChunk:
    chunk = Chunk(
        id=uuid.uuid4(),
        document_id=uuid.UUID(int=doc),
        category="articles",
        author_id=uuid.UUID(int=1),
        author_full_name="Ada Lovelace",
        platform="blog",
        link=link,
        title="t",
        position=position,
        text="x",
        token_count=3,
        source_hash="h",
    )
    return RetrievedChunk(chunk=chunk, score=1.0 / rank, rank=rank)


class _FixedRetriever:
    """Returns a fixed chunk ranking per (question, mode): the metrics are then checkable by hand."""

    def __init__(self, rankings: dict[tuple[str, str], list[tuple[int, str]]]) -> None:
        self.rankings = rankings
        self.calls: list[tuple[str, int, str | None, str | None]] = []

    def search(self, query, k=5, author=None, mode=None):
        self.calls.append((query, k, author, mode))
        hits = [_hit(doc, link, i) for i, (doc, link) in enumerate(self.rankings[(query, mode)], start=1)]
        return RetrievalResult(query=query, hits=hits)


def test_metrics_on_a_hand_checked_case(tmp_path):
    a, b, c = "https://x/a", "https://x/b", "https://x/c/"
    retriever = _FixedRetriever(
        {
            # q1: doc a's two chunks first → document ranks: a=1, b=2 → rank 1
            ("q1", "dense"): [(1, a), (1, a), (2, b)],
            # q2: doc a, doc a again, doc b, then c (link with trailing slash matches) → doc ranks a, b, c → rank 3
            ("q2", "dense"): [(1, a), (1, a), (2, b), (3, c)],
            # q3: target never retrieved → miss
            ("q3", "dense"): [(2, b)],
            ("q1", "sparse"): [(2, b), (3, "https://x/c"), (4, "https://x/d"), (5, "https://x/e"), (6, "f"), (1, a)],
            ("q2", "sparse"): [(3, c)],
            ("q3", "sparse"): [],
        }
    )
    items = [
        QAItem(question="q1", link=a, kind="fact"),
        QAItem(question="q2", link="https://x/c", kind="fact", author="Ada Lovelace"),
        QAItem(question="q3", link=a, kind="concept"),
    ]
    evaluation = evaluate_retrieval(retriever, items, k=10, modes=["dense", "sparse"])
    dense, sparse = evaluation.overall["dense"], evaluation.overall["sparse"]
    assert dense["hit@1"] == pytest.approx(1 / 3)
    assert dense["hit@5"] == dense["hit@10"] == pytest.approx(2 / 3)
    assert dense["mrr@10"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    # sparse: q1 found at document rank 6 (outside @5, inside @10), q2 at rank 1
    assert sparse["hit@1"] == pytest.approx(1 / 3)
    assert sparse["hit@5"] == pytest.approx(1 / 3)
    assert sparse["hit@10"] == pytest.approx(2 / 3)
    assert sparse["mrr@10"] == pytest.approx((1 / 6 + 1) / 3)
    assert evaluation.per_kind["concept"]["dense"]["hit@10"] == 0.0
    assert evaluation.per_kind["fact"]["dense"]["mrr@10"] == pytest.approx((1 + 1 / 3) / 2)
    # enough chunks are fetched for k distinct documents; by default the question is searched as asked (the
    # search service resolves the filter from it), and a bare retriever applies none: q2's author is "missing"
    assert ("q2", 50, None, "dense") in retriever.calls
    assert evaluation.author_filter["fact"]["author_named"] == 1 and evaluation.author_filter["fact"]["missing"] == 1
    oracle = evaluate_retrieval(retriever, items, k=10, modes=["dense"], author_from="qa")  # the gold author, requested
    assert ("q2", 50, "Ada Lovelace", "dense") in retriever.calls
    assert oracle.author_filter["fact"]["share_correct"] == 1.0

    json_path, csv_path = write_evaluation(evaluation, tmp_path / "out" / "retrieval.json")
    saved = json.loads(json_path.read_text())
    assert saved["overall"]["dense"]["hit@1"] == pytest.approx(1 / 3)
    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["question"], r["mode"], r["rank"]) for r in rows] == [
        ("q1", "dense", "1"),
        ("q1", "sparse", "6"),
        ("q2", "dense", "3"),
        ("q2", "sparse", "1"),
        ("q3", "dense", ""),
        ("q3", "sparse", ""),
    ]


def test_rank_and_metrics_edge_cases():
    result = RetrievalResult(query="q", hits=[_hit(1, "https://x/a", 1), _hit(2, "https://x/b", 2)])
    assert rank_of(result, "https://x/b", k=1) is None
    assert rank_of(result, "https://x/b/", k=2) == 2
    assert metrics([], 10)["hit@1"] == 0.0
    assert "hit@10" not in metrics([1], 5) and metrics([1], 5)["mrr@5"] == 1.0


def test_qa_loader_ignores_unknown_fields_and_names_bad_lines(tmp_path):
    good = tmp_path / "qa.jsonl"
    good.write_text('{"question": "q", "link": "l", "extra": 1}\n\n{"question": "r", "link": "m", "kind": "k"}\n')
    assert [i.question for i in load_qa(good)] == ["q", "r"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "link": "l"}\n{"question": "no link"}\n')
    with pytest.raises(ConfigurationError, match="line 2"):
        load_qa(bad)


def test_shipped_qa_set_targets_documents_of_the_sample_corpus():
    links = set()
    for name in ("ArticleDocument", "PostDocument", "RepositoryDocument"):
        links |= {r["link"] for r in json.loads((SAMPLE / f"{name}.json").read_text())}
    items = load_qa(SAMPLE / "qa.jsonl")
    assert len(items) >= 40
    assert {i.link for i in items} <= links
    assert {i.kind for i in items} >= {"fact", "concept", "keyword", "post", "code", "author"}


def test_evaluate_retrieval_cli_on_the_sample_corpus(settings, warehouse, tmp_path):
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.wiring import Container

    import_warehouse(warehouse, SAMPLE, show_progress=False)
    container = Container(settings)
    report = container.feature_engineering(show_progress=False).run("all")
    assert report.truncated_chunks == 0
    container.close()  # release the store before the CLI (another process) opens it

    output = tmp_path / "eval" / "retrieval.json"
    env = {
        **os.environ,
        "DATA_DIR": str(settings.data_dir),
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DATABASE": settings.mongodb_database,
        "MONGODB_EMBEDDED": "false",
    }
    run = subprocess.run(
        [sys.executable, "-m", "tools.evaluate_retrieval", "--qa", str(SAMPLE / "qa.jsonl"), "--k", "10",
         "--output", str(output)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(output.read_text())
    assert set(result["overall"]) == {"dense", "sparse", "hybrid"}
    assert set(result["overall"]["hybrid"]) == {"questions", "hit@1", "hit@5", "hit@10", "mrr@10"}
    assert result["overall"]["hybrid"]["hit@10"] >= 0.8
    assert "keyword" in result["per_kind"]
    # the sample set's author-named questions name Elena Marchetti in full: the rule applies her filter
    assert result["author_filter"]["author"]["share_correct"] == 1.0
    rows = list(csv.DictReader(output.with_suffix(".csv").open()))
    assert {r["filter_source"] for r in rows if r["kind"] == "author"} == {"rule"}
    assert "author filter" in run.stdout
