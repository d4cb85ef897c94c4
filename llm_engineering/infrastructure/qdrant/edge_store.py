"""The feature store on Qdrant's in-process engine (qdrant-edge-py): the embedded default.

Same data and behaviour as `QdrantFeatureStore` (qdrant-client), one contract suite for both
(tests/integration/test_vector_store_contract.py):

- chunks: an `EdgeShard` with a dense vector "dense" (cosine) and a sparse vector "sparse" with Qdrant's IDF
  modifier (the engine applies the IDF at query time, as a Qdrant server does); payload = the Chunk, keyword
  indexes on author_full_name, document_id and category. Hybrid = dense + sparse prefetch, each filtered,
  fused with RRF (k = RRF_K) by the engine.
- cleaned documents: a small SQLite table beside the shard (the documents carry no vectors), with the
  completion `marker`, written last per document.

Serving while ingesting (blue/green: blue_green.py publishes and switches, versions.py keeps the folder): the
engine lets one process open a folder, so every process works on a private copy of the published version. The one
writer (a flock names it) edits its copy and publishes it as the next version — after `publish_idle_s` without
writes, at most every `publish_max_delay_s` during long runs, and at close — by renaming it and switching the
`CURRENT` pointer atomically. Readers look at the pointer at most once per `refresh_interval_s` (on
search/exists) and switch to a fresh copy of the new version in a background thread, answering from the old one
meanwhile: nobody waits for anybody. Crash safety follows: a killed writer never published its copy, so the store
reopens at the last published version (every document in it complete up to its marker, in write order) and the
next incremental run redoes what was lost.

IDF: the engine applies Qdrant's IDF (`Modifier.Idf`, ln((N - n + 0.5) / (n + 0.5) + 1)) at query time.
Sparse queries pass an explicit IDF corpus (every point with a sparse vector), which makes the engine count
live points only — with the default (global) scope qdrant-edge, like a Qdrant server, keeps counting deleted
points until their segment is vacuumed, while qdrant-client's local mode counts live points; the explicit
corpus gives every view the same statistics (+0.15 ms per query at 13.5k chunks). Publishing runs the optimizer:
it vacuums a segment once 20% of its points are deleted and builds HNSW above INDEXING_THRESHOLD_KB.
"""

from __future__ import annotations

import atexit
import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from loguru import logger

from llm_engineering.domain.chunks import Chunk, CleanedDocument
from llm_engineering.domain.documents import normalize_full_name
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.vectors import RRF_K, SparseVec

from .blue_green import BlueGreenStore, OpenView
from .versions import PrivateCopy

if TYPE_CHECKING:
    from llm_engineering.settings import Settings

DENSE = "dense"
SPARSE = "sparse"
CHUNKS_DIR = "chunks"
DOCUMENTS_DB = "documents.sqlite3"
META_FILE = "meta.json"
FORMAT = 1
_SCROLL_PAGE = 1000
_INDEXED_FIELDS = ("author_full_name", "document_id", "category")
# Dense vectors up to this size (KB) are searched exactly (brute force in Rust: ~1 ms at 13.5k x 384, but 31 ms
# p50 / 76 ms p95 at 100k on the loaded 2-core box: bench/results/scale_*.json); above it the optimizer builds
# HNSW when a version is published (~2 ms a point there). ~33k MiniLM chunks.
INDEXING_THRESHOLD_KB = 50_000
# A segment is vacuumed (rewritten, and its HNSW rebuilt) once 20% of its points are deleted (Qdrant's default),
# not on every deletion: an incremental run replaces a few documents' chunks, and rebuilding the indexed segment
# for them costs the corpus. The IDF already counts live points only (the explicit corpus below).
DELETED_THRESHOLD = 0.2
VACUUM_MIN_VECTORS = 1000


def _config(qe: Any, dense_size: int) -> Any:
    return qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dense_size, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        wal_enabled=False,  # durability = publishing a closed copy; a WAL would cost 32 MB per copy
        optimizers=qe.EdgeOptimizersConfig(
            deleted_threshold=DELETED_THRESHOLD,
            vacuum_min_vector_number=VACUUM_MIN_VECTORS,
            indexing_threshold=INDEXING_THRESHOLD_KB,
        ),
    )


def _qe() -> Any:
    try:
        import qdrant_edge
    except ImportError as exc:  # pragma: no cover - the features extra installs it
        raise ConfigurationError(
            "The embedded vector store needs qdrant-edge-py (`pip install qdrant-edge-py==0.9.0`, part of the "
            "project's `features` extra). Or set QDRANT_URL to use a Qdrant server."
        ) from exc
    return qdrant_edge


def edge_store_path(settings: Settings) -> Path:
    return Path(getattr(settings, "qdrant_edge_path", None) or settings.data_dir / "qdrant-edge")


class _OpenCopy(OpenView):
    """One private copy opened by this process: the engine's shard (None before ensure_collections) + SQLite."""

    def __init__(self, copy: PrivateCopy, writer: bool) -> None:
        super().__init__(copy, writer)
        self.meta: dict[str, Any] = {}
        self.shard: Any = None
        meta_path = copy.path / META_FILE
        if meta_path.exists():
            self.meta = json.loads(meta_path.read_text())
            if self.meta.get("format") != FORMAT:
                raise ConfigurationError(
                    f"Vector store version {copy.version} has format {self.meta.get('format')}, this code reads "
                    f"format {FORMAT}: delete {copy.path.parents[1]} and re-run the feature pipeline."
                )
            # The writer applies this code's optimizer settings to a store made by older code (stored on disk).
            config = _config(_qe(), self.meta["dense_size"]) if writer else None
            self.shard = _qe().EdgeShard.load(str(copy.path / CHUNKS_DIR), config)
        self.db = sqlite3.connect(copy.path / DOCUMENTS_DB, check_same_thread=False, isolation_level=None)
        # Durability comes from publishing (close + rename + pointer), not from per-document syncs.
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS documents (id TEXT PRIMARY KEY, category TEXT, author_full_name TEXT, "
            "marker TEXT, payload TEXT NOT NULL)"
        )

    def close(self) -> None:
        if self.shard is not None:
            self.shard.close()
            self.shard = None
        self.db.close()


def _open_copy(copy: PrivateCopy, writer: bool) -> _OpenCopy:
    try:
        return _OpenCopy(copy, writer)
    except BaseException:
        copy.release()
        raise


class EdgeFeatureStore(BlueGreenStore):
    """Implements `ports.FeatureStore` on qdrant-edge-py; thread-safe (one lock around the engine). Publishing and
    switching versions are `BlueGreenStore`'s; this class holds the storage operations."""

    backend = "qdrant-edge"

    def _open_view(self, copy: PrivateCopy, writer: bool) -> _OpenCopy:
        return _open_copy(copy, writer)

    def _seal(self, view: _OpenCopy) -> None:
        if view.shard is not None:
            view.shard.optimize()  # vacuum (>= 20% deleted), HNSW above the threshold
            view.shard.flush()

    # --- schema ----------------------------------------------------------------------------------------------
    def dense_size(self) -> int | None:
        with self._lock:
            view = self._reader()
            return view.meta.get("dense_size") if view is not None and view.shard is not None else None

    def ensure_collections(self, dense_size: int) -> bool:
        """Create the store; a dense size that changed (new model) empties it. True if recreated."""
        qe = _qe()
        with self._lock:
            work = self._work()
            recreated = False
            if work.shard is not None:
                if work.meta.get("dense_size") == dense_size:
                    return False
                logger.warning(
                    "The vector store at {} holds {}-d vectors, the embedding model gives {}-d: rebuilding it",
                    self.path,
                    work.meta.get("dense_size"),
                    dense_size,
                )
                work.shard.close()
                work.shard = None
                shutil.rmtree(work.copy.path / CHUNKS_DIR)
                work.db.execute("DELETE FROM documents")
                recreated = True
            shard = qe.EdgeShard.create(str(work.copy.path / CHUNKS_DIR), _config(qe, dense_size))
            for field in _INDEXED_FIELDS:
                shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
            work.shard = shard
            work.meta = {"format": FORMAT, "dense_size": dense_size, DENSE: "cosine", SPARSE: "idf"}
            (work.copy.path / META_FILE).write_text(json.dumps(work.meta))
            self._written()
            return recreated

    def exists(self) -> bool:
        with self._lock:
            view = self._reader()
            return view is not None and view.shard is not None

    def _shard(self, view: _OpenCopy | None) -> Any:
        if view is None or view.shard is None:
            raise ConfigurationError(
                f"The vector store at {self.path} has no chunk collection yet: call ensure_collections() (the "
                "feature pipeline does) before writing."
            )
        return view.shard

    # --- writes -------------------------------------------------------------------------------------------
    def upsert_chunks(self, chunks: Sequence[Chunk], dense: Any, sparse: Sequence[SparseVec]) -> None:
        if not len(chunks):
            return
        qe = _qe()
        points = [
            qe.Point(
                id=str(chunk.id),
                vector={
                    DENSE: vector.tolist() if hasattr(vector, "tolist") else [float(x) for x in vector],
                    SPARSE: qe.SparseVector(list(sv.indices), [float(v) for v in sv.values]),
                },
                payload=chunk.model_dump(mode="json"),
            )
            for chunk, vector, sv in zip(chunks, dense, sparse, strict=True)
        ]
        with self._lock:
            self._shard(self._work()).update(qe.UpdateOperation.upsert_points(points))
            self._written()

    def delete_chunks(self, document_id: UUID | str, keep: Sequence[UUID | str] = ()) -> None:
        """Delete the document's chunks except `keep` (stale positions of a changed or half-written document)."""
        qe = _qe()
        flt = qe.Filter(
            must=[_match(qe, "document_id", str(document_id))],
            must_not=[qe.HasIdCondition({str(k) for k in keep})] if keep else None,
        )
        with self._lock:
            work = self._work()
            if work.shard is not None:
                work.shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
                self._written()

    def put_document(self, document: CleanedDocument, marker: str, stats: dict[str, Any]) -> None:
        """Store the cleaned document and its completion marker (always the last write for a document)."""
        payload = document.model_dump(mode="json") | {"marker": marker, **stats}
        with self._lock:
            work = self._work()
            work.db.execute(
                "INSERT OR REPLACE INTO documents (id, category, author_full_name, marker, payload) VALUES (?,?,?,?,?)",
                (str(document.id), str(document.category), document.author_full_name, marker, json.dumps(payload)),
            )
            self._written()

    def delete_document(self, document_id: UUID | str) -> None:
        """Chunks first, marker last: an interrupted delete is finished by the next run."""
        with self._lock:
            self.delete_chunks(document_id)
            self._work().db.execute("DELETE FROM documents WHERE id = ?", (str(document_id),))
            self._written()

    # --- reads --------------------------------------------------------------------------------------------
    def _scroll(self, view: _OpenCopy, payload: Any, flt: Any = None) -> Iterator[Any]:
        qe = _qe()
        offset = None
        while True:
            records, offset = view.shard.scroll(
                qe.ScrollRequest(offset=offset, limit=_SCROLL_PAGE, filter=flt, with_payload=payload)
            )
            yield from records
            if offset is None:
                return

    def markers(self) -> dict[str, str]:
        """document id -> marker of every completely indexed document."""
        with self._lock:
            view = self._reader()
            if view is None:
                return {}
            return dict(view.db.execute("SELECT id, marker FROM documents").fetchall())

    def chunk_document_ids(self) -> set[str]:
        """Every document id with chunks, from the document_id keyword index (a facet): no scan of the points."""
        qe = _qe()
        with self._lock:
            view = self._reader()
            if view is None or view.shard is None:
                return set()
            limit = view.shard.count(qe.CountRequest(exact=True))  # at most one value per point
            if not limit:
                return set()
            hits = view.shard.facet(qe.FacetRequest(key="document_id", limit=limit, exact=True)).hits
            return {str(h.value) for h in hits if h.count}

    def count_chunks(self) -> int:
        qe = _qe()
        with self._lock:
            view = self._reader()
            if view is None or view.shard is None:
                return 0
            return view.shard.count(qe.CountRequest(exact=True))

    def all_points(self) -> dict[str, dict[str, Any]]:
        """Every chunk point id -> payload (tests and audits)."""
        with self._lock:
            view = self._reader()
            if view is None or view.shard is None:
                return {}
            return {str(r.id): r.payload for r in self._scroll(view, True)}

    def cleaned_documents(self, category: str | None = None, author: str | None = None) -> list[CleanedDocument]:
        """The logical feature store: cleaned documents without vectors, for dataset generation."""
        sql, args = "SELECT payload FROM documents", []
        clauses = []
        if category:
            clauses.append("category = ?")
            args.append(str(category))
        if author:
            clauses.append("author_full_name = ?")
            args.append(normalize_full_name(author))
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        fields = set(CleanedDocument.model_fields)
        with self._lock:
            view = self._reader()
            rows = view.db.execute(sql + " ORDER BY rowid", args).fetchall() if view is not None else []
        return [
            CleanedDocument.model_validate({k: v for k, v in json.loads(row[0]).items() if k in fields}) for row in rows
        ]

    # --- search -------------------------------------------------------------------------------------------
    def search(
        self,
        mode: str,
        dense: Sequence[float] | None,
        sparse: SparseVec | None,
        limit: int,
        author_full_name: str | None = None,
        prefetch_limit: int | None = None,
    ) -> list[tuple[Chunk, float]]:
        """dense | sparse | hybrid (prefetch of both, each filtered, fused with RRF_K by the engine)."""
        qe = _qe()
        flt = qe.Filter(must=[_match(qe, "author_full_name", author_full_name)]) if author_full_name else None
        sparse_query = qe.SparseVector(list(sparse.indices), [float(v) for v in sparse.values]) if sparse else None
        live_idf = qe.SearchParams(idf=qe.IdfParams(corpus=qe.Filter(must=[qe.HasVectorCondition(SPARSE)])))
        if mode == "dense":
            request = qe.QueryRequest(
                limit=limit, query=qe.Query.Nearest(_floats(dense), using=DENSE), filter=flt, with_payload=True
            )
        elif mode == "sparse":
            if sparse is None or not sparse.indices:  # a query of stopwords only matches nothing lexically
                return []
            request = qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(sparse_query, using=SPARSE),
                filter=flt,
                params=live_idf,
                with_payload=True,
            )
        elif mode == "hybrid":
            depth = prefetch_limit or max(limit * 4, 20)
            prefetches = [qe.Prefetch(limit=depth, query=qe.Query.Nearest(_floats(dense), using=DENSE), filter=flt)]
            if sparse is not None and sparse.indices:
                lexical = qe.Query.Nearest(sparse_query, using=SPARSE)
                prefetches.append(qe.Prefetch(limit=depth, query=lexical, filter=flt, params=live_idf))
            request = qe.QueryRequest(
                limit=limit, query=qe.Fusion.Rrf(k=RRF_K), prefetches=prefetches, with_payload=True
            )
        else:
            raise ValueError(f"unknown search mode {mode!r} (dense, sparse or hybrid)")
        with self._lock:
            view = self._reader()
            if view is None or view.shard is None:
                return []
            points = view.shard.query(request)
        return [(Chunk.model_validate(p.payload), float(p.score)) for p in points]


def _floats(vector: Any) -> list[float]:
    return vector.tolist() if hasattr(vector, "tolist") else [float(x) for x in vector]


def _match(qe: Any, key: str, value: str) -> Any:
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


# --- one store per folder and process ----------------------------------------------------------------------
_stores: dict[str, EdgeFeatureStore] = {}
_stores_lock = threading.Lock()
_registered: list[bool] = []


def get_edge_store(settings: Settings) -> EdgeFeatureStore:
    key = str(edge_store_path(settings).resolve())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            if not _registered:
                _registered.append(True)
                atexit.register(close_edge_stores)  # publish pending writes, release the writer lock
            store = _stores[key] = EdgeFeatureStore(key)
        elif store.closed:  # closed by its owner (e.g. a wiring container): a fresh one
            store = _stores[key] = EdgeFeatureStore(key)
        return store


def close_edge_stores(settings: Settings | None = None) -> None:
    with _stores_lock:
        keys = [str(edge_store_path(settings).resolve())] if settings is not None else list(_stores)
        stores = [s for s in (_stores.pop(k, None) for k in keys) if s is not None]
    for store in stores:
        store.close()
