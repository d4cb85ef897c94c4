"""The feature engineering logic: warehouse → clean → chunk → embed → Qdrant, incremental and restart-safe.

Pipeline steps call the stages one by one (`query`, `plan`, `clean`, `index`); `FeatureEngineering.run`
chains the same stages in-process (the composition root builds the service: `get_container().feature_engineering()`).
Incremental runs compare each document's marker (hash of the source content and the feature settings) with
the one stored after its last complete indexing: only new or changed documents are cleaned, chunked and
embedded; documents gone from the warehouse lose their chunks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from loguru import logger
from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from llm_engineering.application.ports import Embedder, FeatureStore, WarehouseRepository
from llm_engineering.domain.chunks import Chunk, CleanedDocument
from llm_engineering.domain.errors import ConfigurationError
from llm_engineering.domain.types import DOCUMENT_CATEGORIES, DataCategory

from . import sparse
from .boilerplate import remove_boilerplate
from .chunking import DEFAULT_CHUNKING, ChunkingParams, chunk_document, index_text
from .cleaning import clean_document

# Bump when cleaning/chunking/sparse logic changes meaningfully: every document is then re-indexed.
# 2: chunks are embedded and term-weighted with their document's title (chunking.index_text).
FEATURE_LOGIC_VERSION = "3"


# --- artifacts passed between steps ----------------------------------------------------------------------------
class WarehouseSnapshot(BaseModel):
    """The selected authors' documents as versions (id -> content hash, per category), plus the ids of every
    document in the warehouse (for removals). No content: `clean` reads only the documents the plan indexes, so
    an incremental run costs the change, not the corpus (issue #24)."""

    authors: list[str]
    versions: dict[DataCategory, dict[str, str]] = Field(default_factory=dict)
    warehouse_document_ids: list[str] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {str(c): len(self.versions.get(c, {})) for c in DOCUMENT_CATEGORIES}


class FeaturePlan(BaseModel):
    new: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    markers: dict[str, str] = Field(default_factory=dict)  # document id -> marker to write when done
    had_points: list[str] = Field(default_factory=list)  # documents with chunks or a marker before this run

    @property
    def to_index(self) -> set[str]:
        return set(self.new) | set(self.changed)


class CleanedBatch(BaseModel):
    documents: list[CleanedDocument] = Field(default_factory=list)
    seconds: float = 0.0
    boilerplate: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="per site: documents seen, furniture lines learned and removed"
    )


class FeatureReport(BaseModel):
    """What a run did. `truncated_chunks` counts chunks longer than the model window: it must be 0."""

    authors: list[str]
    documents: dict[str, int]  # selected documents per category
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    documents_indexed: int = 0
    chunks_written: int = 0
    chunks_per_category: dict[str, int] = Field(default_factory=dict)
    tokens: int = 0
    truncated_chunks: int = 0
    max_chunk_tokens: int = 0
    model_max_seq_length: int = 0
    chunks_total: int = 0  # points in the store after the run
    store_rebuilt: bool = False  # collections recreated because the embedding size changed
    timings_s: dict[str, float] = Field(default_factory=dict)
    embedding_model: str = ""

    def summary_rows(self) -> list[tuple[str, Any]]:
        return [
            ("authors", ", ".join(self.authors) or "all"),
            ("documents", ", ".join(f"{k}={v}" for k, v in self.documents.items())),
            ("new / changed / unchanged / removed", f"{self.new} / {self.changed} / {self.unchanged} / {self.removed}"),
            ("chunks written", self.chunks_written),
            ("tokens embedded", self.tokens),
            ("truncated chunks", self.truncated_chunks),
            ("chunks in store", self.chunks_total),
            *((f"time {k} (s)", f"{v:.2f}") for k, v in self.timings_s.items()),
        ]


def feature_fingerprint(model_id: str, chunking: dict[DataCategory, ChunkingParams]) -> str:
    spec = {
        "version": FEATURE_LOGIC_VERSION,
        "model": model_id,
        "chunking": {str(k): v.model_dump() for k, v in sorted(chunking.items())},
        "bm25": [sparse.BM25_K1, sparse.BM25_B, sparse.BM25_AVG_LEN],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def document_marker(source_hash: str, fingerprint: str) -> str:
    return f"{source_hash}:{fingerprint}"


class FeatureEngineering:
    def __init__(
        self,
        warehouse: WarehouseRepository,
        store: FeatureStore,
        embedder: Embedder,
        chunking: dict[DataCategory, ChunkingParams] | None = None,
        batch_chunks: int = 512,
        show_progress: bool = True,
        after_document: Callable[[str], None] | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.store = store
        self.embedder = embedder
        self.chunking = {**DEFAULT_CHUNKING, **(chunking or {})}
        self.batch_chunks = batch_chunks
        self.show_progress = show_progress
        self.after_document = after_document  # test hook: runs after each document is complete
        self.fingerprint = feature_fingerprint(embedder.model_id, self.chunking)

    # --- stage 1: query the warehouse -----------------------------------------------------------------------
    def query(self, authors: Iterable[str] | str | None) -> WarehouseSnapshot:
        names = resolve_author_names(authors)
        all_docs = {c: self.warehouse.document_versions(c) for c in DOCUMENT_CATEGORIES}
        selected_ids = None
        if names:
            known = {u.full_name: u for u in self.warehouse.list_users()}
            missing = [n for n in names if n not in known]
            if missing:
                raise ConfigurationError(
                    f"Unknown author(s) {missing}: not in the warehouse (known: {sorted(known) or 'none'}). "
                    "Run the ETL or import data first; the feature pipeline never creates users."
                )
            selected_ids = {str(known[n].id) for n in names}
        versions = {
            c: {i: h for i, (author_id, h) in docs.items() if selected_ids is None or author_id in selected_ids}
            for c, docs in all_docs.items()
        }
        return WarehouseSnapshot(
            authors=list(names),
            versions=versions,
            warehouse_document_ids=sorted(i for docs in all_docs.values() for i in docs),
        )

    # --- stage 2: compare with the store ----------------------------------------------------------------------
    def plan(self, snapshot: WarehouseSnapshot) -> FeaturePlan:
        # No model is loaded here: an unchanged re-run compares hashes and never touches the weights.
        stored = self.store.markers()
        in_warehouse = set(snapshot.warehouse_document_ids)
        plan = FeaturePlan()
        for doc_id, source_hash in (item for docs in snapshot.versions.values() for item in docs.items()):
            marker = document_marker(source_hash, self.fingerprint)
            plan.markers[doc_id] = marker
            if doc_id not in stored:
                plan.new.append(doc_id)
            elif stored[doc_id] != marker:
                plan.changed.append(doc_id)
            else:
                plan.unchanged.append(doc_id)
        # Gone from the warehouse: indexed (marker) or half-indexed (chunks without a marker yet).
        indexed = set(stored) | self.store.chunk_document_ids()
        plan.removed = sorted(indexed - in_warehouse)
        plan.had_points = sorted(indexed & in_warehouse)
        return plan

    # --- stage 3: clean -------------------------------------------------------------------------------------------
    def clean(self, snapshot: WarehouseSnapshot, plan: FeaturePlan) -> CleanedBatch:
        started = time.perf_counter()
        todo = plan.to_index
        documents = [
            clean_document(d)
            for category, versions in snapshot.versions.items()
            for d in self.warehouse.get_documents(category, [i for i in versions if i in todo])
        ]
        # Lines repeated across many documents of one site are page furniture (share widgets, sign-in bars): the
        # evidence is the documents cleaned in this run (a full run: the whole corpus).
        documents, evidence = remove_boilerplate(documents)
        if evidence.lines:
            logger.info(f"Boilerplate removed by evidence: {evidence.summary()}")
        return CleanedBatch(documents=documents, seconds=time.perf_counter() - started, boilerplate=evidence.summary())

    # --- stage 4: chunk, embed, load --------------------------------------------------------------------------
    def index(self, snapshot: WarehouseSnapshot, plan: FeaturePlan, cleaned: CleanedBatch) -> FeatureReport:
        report = FeatureReport(
            authors=snapshot.authors,
            documents=snapshot.counts(),
            new=len(plan.new),
            changed=len(plan.changed),
            unchanged=len(plan.unchanged),
            removed=len(plan.removed),
            model_max_seq_length=self.embedder.max_seq_length,
            embedding_model=self.embedder.model_id,
        )
        timings = Counter({"clean": cleaned.seconds})
        started = time.perf_counter()
        if cleaned.documents:  # the model (and its vector size) is only needed when something is embedded
            report.store_rebuilt = self.store.ensure_collections(self.embedder.dimension)
            if report.store_rebuilt and plan.unchanged:  # same model id, new vector size: markers are gone too
                logger.warning(
                    "Feature store rebuilt (new vector size): {} unchanged documents get re-indexed by the next run",
                    len(plan.unchanged),
                )
        for doc_id in plan.removed:
            self.store.delete_document(doc_id)
        timings["remove"] += time.perf_counter() - started

        per_category: Counter[str] = Counter()
        group: list[tuple[CleanedDocument, list[Chunk]]] = []
        progress = tqdm(total=0, unit="chunk", desc="embedding", disable=not self.show_progress)
        # One writer thread: a group's Qdrant writes (I/O-bound, local mode commits per point) overlap with the
        # next group's embedding (CPU-bound). At most one group is in flight and writes keep their order, so each
        # document's marker still follows its chunks.
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-writer")
        pending: Future | None = None
        had_points = set(plan.had_points)
        try:
            for position, document in enumerate(cleaned.documents):
                started = time.perf_counter()
                chunks = chunk_document(document, self.embedder, self.chunking[document.category])
                timings["chunk"] += time.perf_counter() - started
                progress.total += len(chunks)
                group.append((document, chunks))
                last = position == len(cleaned.documents) - 1
                if last or sum(len(c) for _, c in group) >= self.batch_chunks:
                    vectors = self._embed(group, timings, progress)
                    if pending is not None:
                        pending.result()  # surfaces a failed write before more work is queued
                    pending = writer.submit(
                        self._write, group, vectors, plan, had_points, report, per_category, timings
                    )
                    group = []
            if pending is not None:
                pending.result()
        finally:
            writer.shutdown(wait=True)
            progress.close()
        report.chunks_per_category = dict(per_category)
        report.chunks_total = self.store.count_chunks()
        report.timings_s = {k: round(v, 3) for k, v in timings.items()}
        return report

    def _embed(self, group: list[tuple[CleanedDocument, list[Chunk]]], timings: Counter[str], progress: Any) -> tuple:
        """Dense vectors for a group of documents in one batched call, plus their sparse vectors; both of the
        chunks' index text (the title prefix, then the chunk)."""
        chunks = [c for _, doc_chunks in group for c in doc_chunks]
        texts = [index_text(c, self.chunking[c.category]) for c in chunks]
        started = time.perf_counter()
        dense = self.embedder.encode(texts)
        timings["embed"] += time.perf_counter() - started
        progress.update(len(chunks))
        started = time.perf_counter()
        sparse_vectors = [sparse.document_vector(text) for text in texts]
        timings["sparse"] += time.perf_counter() - started
        return dense, sparse_vectors

    def _write(
        self,
        group: list[tuple[CleanedDocument, list[Chunk]]],
        vectors: tuple,
        plan: FeaturePlan,
        had_points: set[str],
        report: FeatureReport,
        per_category: Counter[str],
        timings: Counter[str],
    ) -> None:
        """Per document: chunks, then removal of its stale chunks, then its marker (always last)."""
        dense, sparse_vectors = vectors
        started = time.perf_counter()
        offset = 0
        for document, doc_chunks in group:
            doc_dense = dense[offset : offset + len(doc_chunks)]
            doc_sparse = sparse_vectors[offset : offset + len(doc_chunks)]
            offset += len(doc_chunks)
            self.store.upsert_chunks(doc_chunks, doc_dense, doc_sparse)
            if str(document.id) in had_points:  # a brand-new document has nothing stale to remove
                self.store.delete_chunks(document.id, keep=[c.id for c in doc_chunks])
            tokens = sum(c.token_count for c in doc_chunks)
            stats = {"chunk_count": len(doc_chunks), "token_count": tokens}
            self.store.put_document(document, plan.markers[str(document.id)], stats)
            report.documents_indexed += 1
            report.chunks_written += len(doc_chunks)
            report.tokens += tokens
            report.truncated_chunks += sum(c.token_count > self.embedder.max_seq_length for c in doc_chunks)
            report.max_chunk_tokens = max([report.max_chunk_tokens, *(c.token_count for c in doc_chunks)])
            per_category[str(document.category)] += len(doc_chunks)
            if self.after_document is not None:
                self.after_document(str(document.id))
        timings["load"] += time.perf_counter() - started

    def run(self, authors: Iterable[str] | str | None = None) -> FeatureReport:
        timings = {}
        started = time.perf_counter()
        snapshot = self.query(authors)
        timings["query"] = time.perf_counter() - started
        started = time.perf_counter()
        plan = self.plan(snapshot)
        timings["plan"] = time.perf_counter() - started
        report = self.index(snapshot, plan, self.clean(snapshot, plan))
        report.timings_s = {**{k: round(v, 3) for k, v in timings.items()}, **report.timings_s}
        logger.info(
            "Features: {} new, {} changed, {} unchanged, {} removed; {} chunks written, {} in store",
            report.new,
            report.changed,
            report.unchanged,
            report.removed,
            report.chunks_written,
            report.chunks_total,
        )
        return report


def resolve_author_names(authors: Iterable[str] | str | None) -> list[str]:
    """[] means every author; "all" (or None) too."""
    from llm_engineering.domain.documents import normalize_full_name

    if authors is None or (isinstance(authors, str) and authors.strip().lower() == "all"):
        return []
    if isinstance(authors, str):
        authors = [authors]
    names = [normalize_full_name(a) for a in authors if a and a.strip()]
    return [] if any(n.lower() == "all" for n in names) else sorted(set(names))


def parse_chunking(config: dict[str, Any] | None) -> dict[DataCategory, ChunkingParams]:
    """{"articles": {"chunk_tokens": 200, "overlap_tokens": 32}, ...} from a YAML config -> typed params."""
    out: dict[DataCategory, ChunkingParams] = {}
    for key, values in (config or {}).items():
        try:
            category = DataCategory(key)
        except ValueError as exc:
            names = [str(c) for c in DOCUMENT_CATEGORIES]
            raise ConfigurationError(f"chunking.{key}: unknown category (use one of {names})") from exc
        out[category] = DEFAULT_CHUNKING[category].model_copy(update=dict(values or {}))
        ChunkingParams.model_validate(out[category].model_dump())
    return out
