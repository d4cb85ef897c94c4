"""The feature store on Qdrant's in-process engine (qdrant-edge-py): the embedded default.

Same data and behaviour as `QdrantFeatureStore` (qdrant-client), one contract suite for both
(tests/integration/test_vector_store_contract.py):

- chunks: an `EdgeShard` with a dense vector "dense" (cosine) and a sparse vector "sparse" with Qdrant's IDF
  modifier (the engine applies the IDF at query time, as a Qdrant server does); payload = the Chunk, keyword
  indexes on author_full_name, document_id and category. Hybrid = dense + sparse prefetch, each filtered,
  fused with RRF (k = RRF_K) by the engine.
- cleaned documents: a small SQLite table beside the shard (the documents carry no vectors), with the
  completion `marker`, written last per document.

Serving while ingesting (blue/green, see versions.py): the engine lets one process open a folder, so every
process works on a private copy of the published version. The one writer (a flock names it) edits its copy
and publishes it as the next version — after `publish_idle_s` without writes, at most every
`publish_max_delay_s` during long runs, and at close — by renaming it and switching the `CURRENT` pointer
atomically. Readers look at the pointer at most once per `refresh_interval_s` (on search/exists) and switch
to a fresh copy of the new version in a background thread, answering from the old one meanwhile: nobody
waits for anybody. Crash safety follows: a killed writer never published its copy, so the store reopens at
the last published version (every document in it complete up to its marker, in write order) and the next
incremental run redoes what was lost.

IDF: the engine applies Qdrant's IDF (`Modifier.Idf`, ln((N - n + 0.5) / (n + 0.5) + 1)) at query time.
Sparse queries pass an explicit IDF corpus (every point with a sparse vector), which makes the engine count
live points only — with the default (global) scope qdrant-edge, like a Qdrant server, keeps counting deleted
points until their segment is vacuumed, while qdrant-client's local mode counts live points; the explicit
corpus gives every view the same statistics (+0.15 ms per query at 13.5k chunks). Publishing also vacuums
segments with deleted points, to reclaim their space.
"""

from __future__ import annotations

import atexit
import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from loguru import logger

from llm_engineering.domain.chunks import Chunk, CleanedDocument
from llm_engineering.domain.documents import normalize_full_name
from llm_engineering.domain.errors import ConfigurationError, ServiceUnavailableError
from llm_engineering.domain.vectors import RRF_K, SparseVec

from .versions import READERS, WORK, PrivateCopy, VersionedFolder

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
# Dense vectors up to this size (KB) are searched exactly (brute force in Rust: ~1 ms at 13.5k x 384); above
# it the optimizer builds HNSW when a version is published. ~130k MiniLM chunks.
INDEXING_THRESHOLD_KB = 200_000


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


class _OpenCopy:
    """One private copy opened by this process: the engine's shard (None before ensure_collections) + SQLite."""

    def __init__(self, copy: PrivateCopy, writer: bool) -> None:
        self.copy = copy
        self.writer = writer
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
            self.shard = _qe().EdgeShard.load(str(copy.path / CHUNKS_DIR))
        self.db = sqlite3.connect(copy.path / DOCUMENTS_DB, check_same_thread=False, isolation_level=None)
        # Durability comes from publishing (close + rename + pointer), not from per-document syncs.
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS documents (id TEXT PRIMARY KEY, category TEXT, author_full_name TEXT, "
            "marker TEXT, payload TEXT NOT NULL)"
        )

    @property
    def version(self) -> str | None:
        return self.copy.version

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


class EdgeFeatureStore:
    """Implements `ports.FeatureStore` on qdrant-edge-py; thread-safe (one lock around the engine)."""

    backend = "qdrant-edge"

    def __init__(
        self,
        path: Path | str,
        *,
        refresh_interval_s: float = 1.0,
        publish_idle_s: float = 1.0,
        publish_max_delay_s: float = 15.0,
        grace_s: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.refresh_interval_s = refresh_interval_s
        self.publish_idle_s = publish_idle_s
        self.publish_max_delay_s = publish_max_delay_s
        self.folder = VersionedFolder(self.path, grace_s=grace_s)
        self._lock = threading.RLock()
        self._open: _OpenCopy | None = None
        self._next_check = 0.0
        self._switcher: threading.Thread | None = None
        self._publisher: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._dirty = False
        self._first_dirty = 0.0
        self._last_write = 0.0
        self._last_publish = 0.0
        self._publish_cost_s = 0.0
        self._collected = False
        self._failed: BaseException | None = None
        self.last_published: str | None = None

    # --- views -------------------------------------------------------------------------------------------
    def _reader(self) -> _OpenCopy | None:
        """The copy reads go to: the writer's work copy, else the published version (switched at most once a
        `refresh_interval_s`). Call with the lock held."""
        if self._closed:
            raise RuntimeError(f"the vector store at {self.path} is closed")
        if self.folder.is_writer:
            return self._work()
        now = time.monotonic()
        if self._open is not None and now < self._next_check:
            return self._open
        self._next_check = now + self.refresh_interval_s
        current = self.folder.current()
        if current is None or (self._open is not None and self._open.version == current):
            return self._open
        if self._open is None:  # nothing to answer from yet: switch now
            self._collect_once()
            self._open = _open_copy(self.folder.checkout(READERS, current), writer=False)
            logger.info("Vector store: opened version {} of {}", current, self.path)
        elif self._switcher is None or not self._switcher.is_alive():
            self._switcher = threading.Thread(
                target=self._switch, args=(current,), name="vector-store-switch", daemon=True
            )
            self._switcher.start()
        return self._open

    def _switch(self, version: str) -> None:
        """Copy and open the new version off the request path, then swap it in."""
        started = time.perf_counter()
        try:
            fresh = _open_copy(self.folder.checkout(READERS, version), writer=False)
        except Exception:  # noqa: BLE001 - keep serving the old version; the next poll retries
            logger.exception("Vector store: could not open version {} of {}", version, self.path)
            return
        with self._lock:
            if self._closed or self.folder.is_writer:
                old = fresh
            else:
                old, self._open = self._open, fresh
        if old is not None:
            old.close()
            old.copy.release()
        logger.info(
            "Vector store: switched to version {} of {} in {:.0f} ms",
            version,
            self.path,
            (time.perf_counter() - started) * 1000,
        )

    def _work(self) -> _OpenCopy:
        """The writer's private copy of the current version (taken on the first write). Lock held."""
        if self._failed is not None:
            raise ServiceUnavailableError(
                f"Publishing the vector store at {self.path} failed ({self._failed}); the writes since the last "
                "published version were dropped. Fix the cause (disk space, permissions) and re-run the feature "
                "pipeline: it redoes every document without a published marker."
            ) from self._failed
        if self._open is not None and self._open.writer:
            return self._open
        self.folder.acquire_writer()  # raises, naming the other writer
        if self._open is not None:  # a reader copy: the work copy replaces it
            self._open.close()
            self._open.copy.release()
            self._open = None
        self._collect_once()
        self._open = _open_copy(self.folder.checkout(WORK, self.folder.current()), writer=True)
        if self._publisher is None:
            self._publisher = threading.Thread(target=self._publish_loop, name="vector-store-publish", daemon=True)
            self._publisher.start()
        return self._open

    def _collect_once(self) -> None:
        if not self._collected:
            self._collected = True
            self.folder.collect_garbage()

    def _written(self) -> None:
        now = time.monotonic()
        if not self._dirty:
            self._dirty = True
            self._first_dirty = now
        self._last_write = now

    # --- publishing ----------------------------------------------------------------------------------------
    def _publish_loop(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                if not self._dirty or self._closed:
                    continue
                now = time.monotonic()
                # Copying costs time proportional to the store: publish at most ~10% of the time.
                if now - self._last_publish < 10 * self._publish_cost_s:
                    continue
                if now - self._last_write >= self.publish_idle_s or now - self._first_dirty >= self.publish_max_delay_s:
                    try:
                        self._publish_locked()
                    except Exception:  # noqa: BLE001 - the next write or close retries
                        logger.exception("Vector store: publishing {} failed", self.path)

    def publish(self) -> str | None:
        """Publish the writer's pending changes now (readers switch within `refresh_interval_s`)."""
        with self._lock:
            return self._publish_locked()

    def _publish_locked(self) -> str | None:
        if not self._dirty or self._open is None or not self._open.writer:
            return None
        started = time.perf_counter()
        work = self._open
        self._open = None
        try:
            if work.shard is not None:
                work.shard.optimize()  # vacuum segments with deleted points (space; the IDF counts live points)
                work.shard.flush()
            work.close()
            version = self.folder.publish(work.copy)
        except BaseException as exc:
            work.copy.release()  # never publish a half-closed copy; readers keep the last good version
            self._dirty = False
            self._failed = exc  # the next write says so, instead of silently continuing without these writes
            raise
        self._dirty = False
        self._last_publish = time.monotonic()
        self._publish_cost_s = time.perf_counter() - started
        self.last_published = version
        self.folder.collect_garbage()
        cost_ms = self._publish_cost_s * 1000
        logger.info("Vector store: published version {} of {} ({:.0f} ms)", version, self.path, cost_ms)
        return version

    def close(self) -> None:
        """Publish pending writes, close the engine, remove private copies, release the writer lock."""
        self._stop.set()
        if self._publisher is not None:
            self._publisher.join(timeout=30)
        switcher = self._switcher
        if switcher is not None:
            switcher.join(timeout=60)
        with self._lock:
            if self._closed:
                return
            try:
                self._publish_locked()
            finally:
                self._closed = True
                if self._open is not None:
                    self._open.close()
                    self._open.copy.release()
                    self._open = None
                self.folder.release_writer()

    @property
    def closed(self) -> bool:
        return self._closed

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
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=dense_size, distance=qe.Distance.Cosine)},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
                wal_enabled=False,  # durability = publishing a closed copy; a WAL would cost 32 MB per copy
                optimizers=qe.EdgeOptimizersConfig(
                    deleted_threshold=0.0, vacuum_min_vector_number=1, indexing_threshold=INDEXING_THRESHOLD_KB
                ),
            )
            shard = qe.EdgeShard.create(str(work.copy.path / CHUNKS_DIR), config)
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
