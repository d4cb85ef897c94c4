"""One contract for both feature-store adapters: Qdrant's in-process engine (qdrant-edge-py, the embedded
default) and qdrant-client (local mode here; a Qdrant server in production).

Vector math runs on small hand-made vectors (exact expected scores); the slow tests use the real embedding
model on the sample corpus. Crash safety is checked with a real kill -9 of a writer process.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from llm_engineering.application.rag.fusion import reciprocal_rank_fusion
from llm_engineering.domain.chunks import Chunk, CleanedDocument
from llm_engineering.domain.errors import ConfigurationError, ServiceUnavailableError
from llm_engineering.domain.vectors import RRF_K, SparseVec
from llm_engineering.infrastructure.qdrant import (
    EDGE,
    QDRANT_LOCAL,
    QDRANT_SERVER,
    close_qdrant_clients,
    get_feature_store,
    vector_store_backend,
)
from llm_engineering.infrastructure.qdrant.edge_store import EdgeFeatureStore
from llm_engineering.infrastructure.qdrant.store import QdrantFeatureStore

PROJECT_ROOT = Path(__file__).parents[2]
ADA, GRACE = "Ada Lovelace", "Grace Hopper"
BACKENDS = [EDGE, QDRANT_LOCAL]


# --- helpers (also used by the writer subprocesses below) ----------------------------------------------------
def backend_settings(settings, backend: str):
    """The same isolated settings, pointed at one adapter (local mode: an explicit QDRANT_PATH)."""
    if backend == QDRANT_LOCAL:
        return settings.model_copy(update={"qdrant_path": settings.data_dir / "qdrant"})
    return settings


def make_chunk(doc: uuid.UUID, position: int, author: str = ADA, text: str | None = None, **extra) -> Chunk:
    return Chunk(
        id=uuid.uuid5(doc, f"{position}:{text}"),
        document_id=doc,
        category=extra.pop("category", "articles"),
        author_id=uuid.uuid5(uuid.NAMESPACE_DNS, author),
        author_full_name=author,
        platform="blog",
        link=f"https://example.org/{doc}",
        title=f"Document {doc}",
        position=position,
        text=text or f"chunk {position} of {doc}",
        token_count=12,
        source_hash="h" + str(doc)[:8],
        metadata=extra.pop("metadata", {}),
    )


def cleaned(doc: uuid.UUID, author: str = ADA, category: str = "articles") -> CleanedDocument:
    return CleanedDocument(
        id=doc,
        category=category,
        author_id=uuid.uuid5(uuid.NAMESPACE_DNS, author),
        author_full_name=author,
        platform="blog",
        link=f"https://example.org/{doc}",
        title=f"Document {doc}",
        text=f"cleaned text of {doc}",
        source_hash="h" + str(doc)[:8],
    )


def unit(*values: float) -> list[float]:
    v = np.asarray(values, dtype=np.float32)
    return (v / np.linalg.norm(v)).tolist()


def idf(df: int, n: int) -> float:
    return math.log((n - df + 0.5) / (df + 0.5) + 1)


def synthetic_corpus(n_docs: int, chunks_per_doc: int, dim: int, seed: int = 7):
    """Deterministic documents: (doc id, marker, chunks, dense, sparse) — what the feature pipeline writes."""
    rng = np.random.default_rng(seed)
    corpus = []
    for d in range(n_docs):
        doc = uuid.UUID(int=d + 1)
        chunks = [make_chunk(doc, p, author=(ADA, GRACE)[d % 2], text=f"doc {d} part {p} " + "x" * 200)
                  for p in range(chunks_per_doc)]  # fmt: skip
        dense = rng.standard_normal((chunks_per_doc, dim)).astype(np.float32)
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        sparse = []
        for _ in range(chunks_per_doc):
            terms = sorted({int(t) for t in rng.integers(0, 500, 8)})
            sparse.append(SparseVec(terms, [round(float(x), 3) for x in rng.uniform(0.2, 1.5, len(terms))]))
        corpus.append((doc, f"marker-{d}", chunks, dense, sparse))
    return corpus


def ingest(store, corpus, dim: int, announce: bool = False) -> int:
    """The feature pipeline's write protocol: per document chunks, stale chunks, then its marker (last)."""
    store.ensure_collections(dim)
    markers = store.markers()
    had = set(markers) | store.chunk_document_ids()
    written = 0
    for i, (doc, marker, chunks, dense, sparse) in enumerate(corpus):
        if markers.get(str(doc)) == marker:
            continue
        if announce:
            print(f"upsert {i}", flush=True)
        store.upsert_chunks(chunks, dense, sparse)
        if str(doc) in had:
            store.delete_chunks(doc, keep=[c.id for c in chunks])
        store.put_document(cleaned(doc, author=chunks[0].author_full_name), marker, {"chunk_count": len(chunks)})
        written += 1
    return written


def open_store(backend: str, path: str, **edge_options):
    if backend == EDGE:
        return EdgeFeatureStore(path, **edge_options)
    from qdrant_client import QdrantClient

    return QdrantFeatureStore(QdrantClient(path=path))


def close_store(store) -> None:
    if isinstance(store, EdgeFeatureStore):
        store.close()
    else:
        store.client.close()


def writer_main(backend: str, path: str, n_docs: int, chunks_per_doc: int, dim: int) -> None:
    """Subprocess entry point: ingest the synthetic corpus, announcing each document before its upsert."""
    store = open_store(backend, path, publish_idle_s=0.05, publish_max_delay_s=0.3)
    ingest(store, synthetic_corpus(n_docs, chunks_per_doc, dim), dim, announce=True)
    print("done", flush=True)
    close_store(store)


def signature(store) -> dict[str, tuple]:
    return {
        pid: (p["document_id"], p["position"], p["text"], p["author_full_name"])
        for pid, p in store.all_points().items()
    }


FAKE = "fake"  # tests/fakes.FakeVectorStore: the fast suite's stand-in must keep the same contract


@pytest.fixture(params=[*BACKENDS, FAKE])
def store(request, settings):
    if request.param == FAKE:
        from tests.fakes import FakeVectorStore

        yield FakeVectorStore()
        return
    variant = backend_settings(settings, request.param)
    value = get_feature_store(variant)
    yield value
    close_qdrant_clients(variant)


# --- selection --------------------------------------------------------------------------------------------------
def test_backend_selection_follows_qdrant_url_vector_store_and_qdrant_path(settings):
    def pick(url=None, choice=None, path=None):
        return vector_store_backend(SimpleNamespace(qdrant_url=url, vector_store=choice, qdrant_path=path))

    assert pick() == EDGE
    assert pick(path="/x") == QDRANT_LOCAL
    assert pick(choice="qdrant-local") == QDRANT_LOCAL
    assert pick(choice="edge", path="/x") == EDGE
    assert pick(url="http://qdrant:6333", choice="edge") == QDRANT_SERVER
    with pytest.raises(ConfigurationError, match="VECTOR_STORE='pinecone'.*QDRANT_URL"):
        pick(choice="pinecone")
    assert isinstance(get_feature_store(settings), EdgeFeatureStore)
    assert get_feature_store(settings) is get_feature_store(settings)  # one per folder and process
    assert isinstance(get_feature_store(backend_settings(settings, QDRANT_LOCAL)), QdrantFeatureStore)
    close_qdrant_clients(settings)
    close_qdrant_clients(backend_settings(settings, QDRANT_LOCAL))


def test_one_container_closing_leaves_the_shared_store_open_for_another(settings):
    """Containers of one process share each folder's store; it closes with the last of them (a test's own
    container closing under a running service's used to fail every later request with 'store is closed')."""
    from llm_engineering.wiring import Container

    serving, passing = Container(settings), Container(settings.model_copy())
    store = serving.feature_store
    assert passing.feature_store is store
    store.ensure_collections(4)
    passing.close()
    assert store.exists() and store.count_chunks() == 0  # still open for the serving container
    serving.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.exists()  # the last owner closed it


# --- the contract -----------------------------------------------------------------------------------------------
def test_create_upsert_is_idempotent_and_payload_round_trips(store):
    assert not store.exists() and store.count_chunks() == 0 and store.markers() == {}
    assert store.all_points() == {} and store.chunk_document_ids() == set() and store.cleaned_documents() == []
    assert store.ensure_collections(4) is False
    assert store.exists() and store.count_chunks() == 0
    assert store.ensure_collections(4) is False  # nothing to change

    doc = uuid.uuid4()
    chunks = [make_chunk(doc, 0, metadata={"path": "src/a.py", "lines": [1, 20]}), make_chunk(doc, 1)]
    dense = np.asarray([unit(1, 0, 0, 0), unit(0, 1, 0, 0)], dtype=np.float32)
    lexical = [SparseVec([3, 9], [0.5, 1.25]), SparseVec([], [])]  # a chunk of stop-words has no terms
    store.upsert_chunks(chunks, dense, lexical)
    store.upsert_chunks(chunks, dense, lexical)  # same ids: replaced, not duplicated
    store.upsert_chunks([], np.zeros((0, 4)), [])
    assert store.count_chunks() == 2
    points = store.all_points()
    assert set(points) == {str(c.id) for c in chunks}
    assert [Chunk.model_validate(points[str(c.id)]) for c in chunks] == chunks
    assert store.chunk_document_ids() == {str(doc)}
    hit, score = store.search("dense", unit(1, 0, 0, 0), None, 1)[0]
    assert hit == chunks[0] and score == pytest.approx(1.0, abs=1e-5)


def test_delete_by_document_keeps_the_listed_chunks_and_delete_document_drops_the_marker(store):
    store.ensure_collections(4)
    a, b = uuid.uuid4(), uuid.uuid4()
    a_chunks = [make_chunk(a, p) for p in range(4)]
    b_chunks = [make_chunk(b, p) for p in range(3)]
    vectors = np.asarray([unit(1, p, 0, 1) for p in range(4)], dtype=np.float32)
    store.upsert_chunks(a_chunks, vectors, [SparseVec([p], [1.0]) for p in range(4)])
    store.upsert_chunks(b_chunks, vectors[:3], [SparseVec([p], [1.0]) for p in range(3)])
    store.put_document(cleaned(a), "m-a", {"chunk_count": 4})
    store.put_document(cleaned(b), "m-b", {"chunk_count": 3})

    store.delete_chunks(a, keep=[a_chunks[0].id, a_chunks[2].id])
    assert {p["position"] for p in store.all_points().values() if p["document_id"] == str(a)} == {0, 2}
    assert store.count_chunks() == 5
    store.delete_chunks(str(a))  # str or UUID, nothing kept
    assert store.chunk_document_ids() == {str(b)} and store.count_chunks() == 3
    assert store.markers() == {str(a): "m-a", str(b): "m-b"}  # chunks and markers are separate writes

    store.delete_document(b)
    assert store.count_chunks() == 0 and store.markers() == {str(a): "m-a"}
    store.delete_document(uuid.uuid4())  # unknown: nothing happens


def _three_authors_corpus(store):
    """Dense directions and sparse terms chosen so every expected ranking is computable by hand."""
    store.ensure_collections(4)
    docs = {name: uuid.uuid4() for name in ("a", "b", "c", "d")}
    rows = [  # doc, author, dense, sparse
        ("a", ADA, unit(1, 0.1, 0, 0), SparseVec([1, 3], [1.0, 0.5])),
        ("b", ADA, unit(1, 0.3, 0, 0), SparseVec([1], [1.2])),
        ("c", ADA, unit(1, 0.6, 0, 0), SparseVec([1], [0.8])),
        ("d", GRACE, unit(1, 0.9, 0, 0), SparseVec([2], [1.0])),
    ]
    chunks = [make_chunk(docs[d], 0, author=author, text=f"chunk {d}") for d, author, _, _ in rows]
    store.upsert_chunks(chunks, np.asarray([r[2] for r in rows], dtype=np.float32), [r[3] for r in rows])
    return {d: c for (d, *_), c in zip(rows, chunks, strict=True)}


def test_dense_search_ranks_by_cosine(store):
    chunks = _three_authors_corpus(store)
    hits = store.search("dense", unit(1, 0, 0, 0), None, 4)
    assert [c.text for c, _ in hits] == ["chunk a", "chunk b", "chunk c", "chunk d"]
    expected = [float(np.dot(unit(1, 0, 0, 0), unit(1, y, 0, 0))) for y in (0.1, 0.3, 0.6, 0.9)]
    assert [s for _, s in hits] == pytest.approx(expected, abs=1e-5)
    assert store.search("dense", np.asarray(unit(0, 1, 0, 0)), None, 1)[0][0] == chunks["d"]  # numpy input too


def test_sparse_search_applies_idf_over_live_chunks(store):
    chunks = _three_authors_corpus(store)
    # term 1 is in 3 of 4 chunks, term 2 in one: the rare term wins although its weight is lower.
    query = SparseVec([1, 2], [1.0, 1.0])
    hits = store.search("sparse", None, query, 4)
    assert hits[0][0] == chunks["d"]
    expected = {"d": idf(1, 4) * 1.0, "b": idf(3, 4) * 1.2, "a": idf(3, 4) * 1.0, "c": idf(3, 4) * 0.8}
    assert [c.text[-1] for c, _ in hits] == ["d", "b", "a", "c"]
    assert [s for _, s in hits] == pytest.approx([expected[c.text[-1]] for c, _ in hits], rel=1e-4)

    # Deleted chunks leave the statistics at once (N = 2, term 1 in one chunk).
    store.delete_chunks(chunks["b"].document_id)
    store.delete_chunks(chunks["c"].document_id)
    hits = store.search("sparse", None, SparseVec([1], [1.0]), 4)
    assert [(c.text, s) for c, s in hits] == [("chunk a", pytest.approx(idf(1, 2) * 1.0, rel=1e-4))]
    assert store.search("sparse", None, SparseVec([], []), 4) == []  # stop-words only: no lexical match
    assert store.search("sparse", None, SparseVec([77], [1.0]), 4) == []


def test_hybrid_search_fuses_both_lists_with_rrf_k60(store):
    chunks = _three_authors_corpus(store)
    dense_query, sparse_query = unit(1, 0.42, 0, 0), SparseVec([1, 3], [1.0, 1.0])
    dense_hits = store.search("dense", dense_query, None, 20)
    sparse_hits = store.search("sparse", None, sparse_query, 20)
    assert [c.text for c, _ in dense_hits] == ["chunk b", "chunk c", "chunk a", "chunk d"]
    assert [c.text for c, _ in sparse_hits] == ["chunk a", "chunk b", "chunk c"]
    expected = reciprocal_rank_fusion([[c.id for c, _ in dense_hits], [c.id for c, _ in sparse_hits]], k=RRF_K)
    # b: 1/61 + 1/62 > a: 1/63 + 1/61 > c: 1/62 + 1/63 > d: 1/64
    assert [cid for cid, _ in expected] == [chunks[x].id for x in "bacd"]
    hybrid = store.search("hybrid", dense_query, sparse_query, 4)
    assert [c.id for c, _ in hybrid] == [chunks[x].id for x in "bacd"]
    assert [s for _, s in hybrid] == sorted((s for _, s in hybrid), reverse=True)
    # Without lexical terms hybrid is the dense list.
    assert [c.id for c, _ in store.search("hybrid", dense_query, SparseVec([], []), 3)] == [
        c.id for c, _ in dense_hits[:3]
    ]
    with pytest.raises(ValueError, match="unknown search mode"):
        store.search("fuzzy", dense_query, sparse_query, 3)


def test_hybrid_uses_rrf_k60_not_qdrants_default_k2(store):
    """x is first by dense and fifth lexically, y second and third: k=60 puts y first, k=2 would put x first."""
    store.ensure_collections(4)
    doc = uuid.uuid4()
    names = ["x", "y", "o4", "o3", "o2", "o1"]  # dense order
    lexical = {"o1": 1.0, "o2": 0.9, "y": 0.8, "o3": 0.7, "x": 0.6, "o4": 0.5}  # sparse order
    chunks = [make_chunk(doc, i, text=name) for i, name in enumerate(names)]
    dense = np.asarray([unit(1, 0.2 * i, 0, 0) for i in range(len(names))], dtype=np.float32)
    store.upsert_chunks(chunks, dense, [SparseVec([1], [lexical[n]]) for n in names])
    query = (unit(1, 0, 0, 0), SparseVec([1], [1.0]))
    dense_ids = [c.id for c, _ in store.search("dense", query[0], None, 6)]
    sparse_ids = [c.id for c, _ in store.search("sparse", None, query[1], 6)]
    assert [c.text for c, _ in store.search("sparse", None, query[1], 6)] == ["o1", "o2", "y", "o3", "x", "o4"]
    at_60 = [cid for cid, _ in reciprocal_rank_fusion([dense_ids, sparse_ids], k=RRF_K)]
    at_2 = [cid for cid, _ in reciprocal_rank_fusion([dense_ids, sparse_ids], k=2)]
    assert RRF_K == 60 and at_60[0] == chunks[1].id and at_2[0] == chunks[0].id
    assert [c.id for c, _ in store.search("hybrid", *query, 6)] == at_60


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_author_filter_applies_to_every_mode(store, mode):
    chunks = _three_authors_corpus(store)
    dense_query = unit(1, 0, 0, 0)  # Grace's chunk is the last by cosine
    sparse_query = SparseVec([1, 2], [1.0, 0.01])  # and nearly the last lexically
    hits = store.search(mode, dense_query, sparse_query, 1, author_full_name=GRACE)
    assert [c for c, _ in hits] == [chunks["d"]]
    hits = store.search(mode, dense_query, sparse_query, 10, author_full_name=ADA, prefetch_limit=10)
    assert hits and {c.author_full_name for c, _ in hits} == {ADA}
    assert store.search(mode, dense_query, sparse_query, 10, author_full_name="Nobody Known") == []


def test_markers_and_cleaned_documents_filter_by_category_and_author(store):
    assert store.cleaned_documents() == []
    store.ensure_collections(4)
    docs = [(uuid.uuid4(), ADA, "articles"), (uuid.uuid4(), ADA, "posts"), (uuid.uuid4(), GRACE, "posts")]
    for doc, author, category in docs:
        store.put_document(cleaned(doc, author, category), f"marker-{doc}", {"chunk_count": 0, "token_count": 0})
    store.put_document(cleaned(docs[0][0], ADA, "articles"), "newer", {"chunk_count": 2})  # replaced in place
    assert store.markers() == {str(docs[0][0]): "newer", **{str(d): f"marker-{d}" for d, _, _ in docs[1:]}}
    assert {d.id for d in store.cleaned_documents()} == {d for d, _, _ in docs}
    assert [d.id for d in store.cleaned_documents(category="articles")] == [docs[0][0]]
    assert {d.id for d in store.cleaned_documents(category="posts")} == {docs[1][0], docs[2][0]}
    assert [d.id for d in store.cleaned_documents(category="posts", author=" Grace   Hopper ")] == [docs[2][0]]
    assert store.cleaned_documents(author="Nobody Known") == []
    assert store.cleaned_documents(category="posts", author=ADA)[0] == cleaned(docs[1][0], ADA, "posts")


def test_a_new_dense_size_rebuilds_the_store(store):
    store.ensure_collections(4)
    doc = uuid.uuid4()
    store.upsert_chunks([make_chunk(doc, 0)], np.asarray([unit(1, 0, 0, 0)]), [SparseVec([1], [1.0])])
    store.put_document(cleaned(doc), "m", {})
    assert store.ensure_collections(4) is False and store.count_chunks() == 1
    assert store.ensure_collections(6) is True
    assert store.count_chunks() == 0 and store.markers() == {} and store.cleaned_documents() == []
    store.upsert_chunks([make_chunk(doc, 0)], np.asarray([unit(1, 0, 0, 0, 0, 1)]), [SparseVec([1], [1.0])])
    assert store.search("dense", unit(1, 0, 0, 0, 0, 1), None, 1)[0][1] == pytest.approx(1.0, abs=1e-5)


# --- kill -9 during an upsert -------------------------------------------------------------------------------------
KILL_SIZES = {EDGE: (16, 1000, 32), QDRANT_LOCAL: (12, 250, 32)}  # documents, chunks per document, dimension


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_during_an_upsert_then_an_incremental_rerun_gives_the_clean_points(settings, backend):
    n_docs, per_doc, dim = KILL_SIZES[backend]
    path = settings.data_dir / f"kill-{backend}"
    code = (
        "import sys; from tests.integration.test_vector_store_contract import writer_main; "
        f"writer_main({backend!r}, {str(path)!r}, {n_docs}, {per_doc}, {dim})"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    killed_at = None
    for line in process.stdout:
        if line.startswith("upsert ") and int(line.split()[1]) >= n_docs // 2:
            time.sleep(0.002)  # inside this document's upsert (a large batch)
            os.kill(process.pid, signal.SIGKILL)
            killed_at = int(line.split()[1])
            break
    process.wait(timeout=60)
    assert killed_at is not None and process.returncode == -signal.SIGKILL, "the writer finished before the kill"

    # Reopen: readable, consistent (every document with a marker has all its chunks), writable again.
    corpus = synthetic_corpus(n_docs, per_doc, dim)
    store = open_store(backend, str(path))
    markers, points = store.markers(), signature(store)
    assert len(markers) <= killed_at
    complete = {str(doc) for doc, *_ in corpus[: len(markers)]}
    assert set(markers) == complete  # documents are written in order; the marker is the last write
    for doc, _, chunks, _, _ in corpus:
        if str(doc) in complete:
            assert all(str(c.id) in points for c in chunks)
    print(f"\n{backend}: killed during document {killed_at}'s upsert; {len(markers)} complete documents survived")
    redone = ingest(store, corpus, dim)
    assert redone == n_docs - len(markers)
    if backend == EDGE:  # the killed writer's private copy is collected
        assert not [p for p in (path / "work").iterdir() if not p.name.startswith(f"{os.getpid()}-")]

    clean = open_store(backend, str(settings.data_dir / f"clean-{backend}"))
    ingest(clean, corpus, dim)
    assert signature(store) == signature(clean)
    assert store.markers() == clean.markers()
    assert store.count_chunks() == n_docs * per_doc
    query = (corpus[3][3][5].tolist(), corpus[3][4][5])
    for mode in ("dense", "sparse"):
        assert [c.id for c, _ in store.search(mode, *query, 5)] == [c.id for c, _ in clean.search(mode, *query, 5)]
    # Hybrid: same fused scores (equal RRF sums may come in either order, so ids are compared as a set).
    ours, theirs = store.search("hybrid", *query, 10), clean.search("hybrid", *query, 10)
    assert [s for _, s in ours] == pytest.approx([s for _, s in theirs])
    assert ours[0][1] > ours[-1][1] and {c.id for c, _ in ours[:1]} == {c.id for c, _ in theirs[:1]}
    close_store(store)
    close_store(clean)


# --- serving while ingesting (embedded engine: one writer process, any number of reader processes) ----------------
READER = r"""
import json, sys, time
from llm_engineering.domain.vectors import SparseVec
from llm_engineering.infrastructure.qdrant.edge_store import EdgeFeatureStore
store = EdgeFeatureStore(sys.argv[1])
print(json.dumps({"ready": store.count_chunks()}), flush=True)
deadline = time.time() + float(sys.argv[2])
while time.time() < deadline:
    started = time.perf_counter()
    hits = store.search("sparse", None, SparseVec([4242], [1.0]), 5)
    count = store.count_chunks()
    print(json.dumps({"t": time.time(), "ms": (time.perf_counter() - started) * 1000, "found": len(hits),
                      "count": count}), flush=True)
    if hits:
        break
    time.sleep(0.05)
store.close()
"""

WRITER = r"""
import json, sys, time, uuid
import numpy as np
from llm_engineering.domain.vectors import SparseVec
from llm_engineering.infrastructure.qdrant.edge_store import EdgeFeatureStore
from tests.integration.test_vector_store_contract import cleaned, make_chunk, unit
store = EdgeFeatureStore(sys.argv[1])
doc = uuid.UUID(int=999)
first = make_chunk(doc, 0, text="first new chunk")
store.upsert_chunks([first], np.asarray([unit(1, 1, 1, 1)]), [SparseVec([7], [1.0])])
print(json.dumps({"writing": True}), flush=True)
time.sleep(float(sys.argv[2]))  # a long pipeline run: the writer lock is held, readers keep answering
store.upsert_chunks([make_chunk(doc, 1, text="the new term")], np.asarray([unit(1, 1, 1, 0)]),
                    [SparseVec([4242], [1.0])])
store.put_document(cleaned(doc), "new", {})
print(json.dumps({"done": time.time()}), flush=True)
store.close()  # the CLI's exit publishes pending writes too (atexit)
"""


def _json_lines(process):
    for line in process.stdout:
        if line.startswith("{"):
            yield json.loads(line)


def test_a_reader_process_answers_from_a_writer_process_new_chunks_without_restart(settings):
    path = settings.data_dir / "qdrant-edge"
    first = EdgeFeatureStore(path)
    ingest(first, synthetic_corpus(6, 20, 4), 4)
    first.close()  # published

    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), "90"], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    lines = _json_lines(reader)
    assert next(lines) == {"ready": 120}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "4"], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert next(_json_lines(writer)) == {"writing": True}

    # A second writer is refused with a message naming the first; readers are not affected.
    with pytest.raises(ServiceUnavailableError, match=rf"written by another process: pid {writer.pid}\b"):
        EdgeFeatureStore(path).ensure_collections(4)

    done = next(_json_lines(writer))["done"]
    writer.wait(timeout=60)
    assert writer.returncode == 0
    answers = list(lines)
    reader.wait(timeout=60)
    assert answers and answers[-1]["found"] == 1, answers[-3:]
    assert answers[-1]["count"] == 122
    switch_s = answers[-1]["t"] - done
    during = [a for a in answers if a["t"] < done]
    slowest = max(a["ms"] for a in answers)
    print(f"\nswitch latency (writer's last write -> reader answers from it): {switch_s:.2f} s; "
          f"{len(during)} answers while the writer held the store, slowest {slowest:.1f} ms")  # fmt: skip
    assert switch_s < 30
    # Never blocked by the writer, which held the store for 4 s (the margin is for a busy shared machine).
    assert len(during) > 10 and max(a["ms"] for a in during) < 2000
    # Old versions and private copies are cleaned up; the published one stays.
    assert sorted(p.name for p in (path / "readers").iterdir()) == []
    assert (path / "CURRENT").read_text().strip() in {p.name for p in (path / "versions").iterdir()}


# --- slow: the real model on the sample corpus -----------------------------------------------------------------
SAMPLE = PROJECT_ROOT / "data" / "sample"


def _top1_agrees(ours, theirs) -> bool:
    """Same top chunk, or a different one with the same score (an exact tie either engine may order)."""
    if not ours or not theirs:
        return not ours and not theirs
    return ours[0][0].id == theirs[0][0].id or abs(ours[0][1] - theirs[0][1]) < 1e-6


@pytest.mark.slow
def test_rankings_of_both_adapters_agree_on_the_sample_corpus(settings, warehouse):
    from llm_engineering.application.evaluation.retrieval import load_qa
    from llm_engineering.application.preprocessing import sparse
    from llm_engineering.application.preprocessing.chunking import chunk_document
    from llm_engineering.application.preprocessing.cleaning import clean_document
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.domain.types import DOCUMENT_CATEGORIES
    from llm_engineering.infrastructure.embeddings import get_embedding_model

    import_warehouse(warehouse, SAMPLE, show_progress=False)
    model = get_embedding_model(settings)
    chunks = [
        c
        for category in DOCUMENT_CATEGORIES
        for d in warehouse.find_documents(category)
        for c in chunk_document(clean_document(d), model)
    ]
    dense = model.encode([c.text for c in chunks])  # once, written to both stores
    lexical = [sparse.document_vector(c.text) for c in chunks]
    stores = {b: get_feature_store(backend_settings(settings, b)) for b in BACKENDS}
    for s in stores.values():
        s.ensure_collections(model.dimension)
        s.upsert_chunks(chunks, dense, lexical)
        assert s.count_chunks() == len(chunks)

    questions = load_qa(SAMPLE / "qa.jsonl")
    agree = {"dense": 0, "sparse": 0, "hybrid": 0, "hybrid_author": 0}
    overlap = []
    for item in questions:
        query = (model.encode_query(item.question).tolist(), sparse.query_vector(item.question))
        for mode in ("dense", "sparse", "hybrid"):
            edge, local = (stores[b].search(mode, *query, 10) for b in BACKENDS)
            agree[mode] += _top1_agrees(edge, local)
            if mode == "hybrid":
                overlap.append(len({c.id for c, _ in edge} & {c.id for c, _ in local}) / max(len(edge), 1))
        author = chunks[0].author_full_name
        edge, local = (stores[b].search("hybrid", *query, 10, author_full_name=author) for b in BACKENDS)
        agree["hybrid_author"] += _top1_agrees(edge, local)
    rates = {mode: round(n / len(questions), 3) for mode, n in agree.items()}
    print(f"\ntop-1 agreement edge vs qdrant-client local mode over {len(questions)} questions, {len(chunks)} chunks: "
          f"{rates}; hybrid top-10 overlap {sum(overlap) / len(overlap):.3f}")  # fmt: skip
    assert agree["dense"] == agree["sparse"] == len(questions)
    assert rates["hybrid"] >= 0.9 and rates["hybrid_author"] >= 0.9
    for b in BACKENDS:
        close_qdrant_clients(backend_settings(settings, b))


SERVICE_READER = r"""
import json, sys, time
from llm_engineering.wiring import get_container
question, wanted, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
retriever = get_container().retriever()  # what the RAG service searches with
retriever.search(question, k=3)  # loads the model, opens the published store
print(json.dumps({"ready": True}), flush=True)
deadline = time.time() + seconds
while time.time() < deadline:
    started = time.perf_counter()
    links = [hit.chunk.link for hit in retriever.search(question, k=3).hits]
    found = wanted in links
    print(json.dumps({"t": time.time(), "ms": (time.perf_counter() - started) * 1000, "found": found}), flush=True)
    if found:
        break
    time.sleep(0.2)
"""


@pytest.mark.slow
def test_the_feature_pipeline_runs_while_a_retriever_process_serves_and_it_sees_the_new_chunks(settings, warehouse):
    from llm_engineering.application.warehouse.transfer import import_warehouse
    from llm_engineering.domain.documents import ArticleDocument

    import_warehouse(warehouse, SAMPLE, show_progress=False)
    env = {
        **os.environ,
        "DATA_DIR": str(settings.data_dir),
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DATABASE": settings.mongodb_database,
        "MONGODB_EMBEDDED": "false",
    }
    pipeline = [sys.executable, "-m", "tools.features", "--config", "configs/feature_engineering.yaml", "--no-zenml"]
    first = subprocess.run(pipeline, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr

    user = warehouse.list_users()[0]
    link = "https://example.org/notes/zyxglorp-key-rotation"
    question = "How does the zyxglorp protocol rotate its signing keys?"
    log = settings.data_dir / "reader.log"
    with open(log, "w") as stderr:
        reader = subprocess.Popen([sys.executable, "-c", SERVICE_READER, question, link, "300"], cwd=PROJECT_ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)  # fmt: skip
    answers = _json_lines(reader)
    assert next(answers, None) == {"ready": True}, log.read_text()[-3000:]
    warehouse.upsert_document(
        ArticleDocument(
            author_id=user.id,
            author_full_name=user.full_name,
            platform="blog",
            link=link,
            content={
                "Title": "Zyxglorp key rotation",
                "Subtitle": "",
                "Content": "## Rotating keys\n\nThe zyxglorp protocol rotates its signing keys every six hours: "
                "a new key pair is announced one hour before it becomes active, and the old key stays valid "
                "for verification for one more day.",
            },
        )
    )
    started = time.time()
    second = subprocess.run(pipeline, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    finished = time.time()
    assert second.returncode == 0, second.stdout + second.stderr
    seen = list(answers)
    reader.wait(timeout=60)
    assert seen and seen[-1]["found"], seen[-3:]
    during = [a for a in seen if started <= a["t"] <= finished]
    latency = seen[-1]["t"] - finished
    slowest = max(a["ms"] for a in seen)
    print(f"\npipeline ran {finished - started:.1f} s while the retriever answered {len(during)} times "
          f"(slowest {slowest:.0f} ms); the new chunk was served {seen[-1]['t'] - started:.1f} s after the "
          f"pipeline started, {latency:+.2f} s relative to its exit")  # fmt: skip
    assert during and latency < 30
