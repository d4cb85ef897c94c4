"""Chunking measured in the embedding model's own tokens; one chunker per data category, from one registry.

A chunk is always a contiguous slice of the cleaned text, so code keeps its indentation and prose keeps its
paragraphs. Text is split by the coarsest boundary that yields pieces within the budget (articles: headings →
paragraphs → lines → sentences → token windows; code: file → top-level definitions → blank-line blocks →
lines → token windows), then neighbouring pieces are packed greedily up to `chunk_tokens`. A new section
(heading, definition) starts a new chunk once the current one holds `min_section_tokens`. Chunks that follow
a size break repeat up to `overlap_tokens` of the previous chunk. Every final chunk is re-counted with the
tokenizer and split further if it would not fit the model's window, so nothing is ever truncated.

What is embedded and term-weighted for a chunk is its *index text*: the document's title, a blank line, then
the chunk (`index_text`). A chunk from the middle of an article rarely says what the article is about; its
title does, and questions that describe a topic in other words find it more often (measured on the rag_blogs
evaluation set: bench/results/retrieval_quality_rag_blogs.json). The chunk's own text (what a citation shows and
the LLM reads) is unchanged; the title's tokens are reserved inside the window, so the index text still fits.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from llm_engineering.application.ports import ChunkTokenizer
from llm_engineering.domain.chunks import Chunk, CleanedDocument, chunk_id
from llm_engineering.domain.types import DataCategory

from .cleaning import split_repository_files


class ChunkingParams(BaseModel):
    chunk_tokens: int = Field(default=200, gt=8, description="Target chunk size in model tokens (no specials).")
    overlap_tokens: int = Field(default=32, ge=0, description="Tokens repeated from the previous chunk.")
    min_section_tokens: int = Field(default=48, ge=0, description="Below this, a new section joins the chunk.")
    title_prefix: bool = Field(default=True, description="Embed and index each chunk with its document's title.")


MAX_TITLE_CHARS = 160  # a title longer than this is cut at a word boundary before it prefixes a chunk


DEFAULT_CHUNKING: dict[DataCategory, ChunkingParams] = {
    DataCategory.ARTICLES: ChunkingParams(chunk_tokens=200, overlap_tokens=32),
    DataCategory.POSTS: ChunkingParams(chunk_tokens=200, overlap_tokens=32),
    DataCategory.REPOSITORIES: ChunkingParams(chunk_tokens=240, overlap_tokens=16, min_section_tokens=96),
}


# --- boundaries ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Level:
    """One kind of boundary: cut before (`at="start"`) or after (`at="end"`) each regex match."""

    pattern: re.Pattern[str]
    at: str = "start"
    section: bool = False  # pieces at this level begin a new section
    protected: bool = True  # boundaries inside fenced code blocks are ignored


_HEADING = Level(re.compile(r"^#{1,6}[ \t]+\S.*$", re.MULTILINE), "start", section=True)
_PARAGRAPH = Level(re.compile(r"\n[ \t]*\n\s*"), "end")
_LINE = Level(re.compile(r"\n"), "end", protected=False)
_SENTENCE = Level(re.compile(r"(?<=[.!?…:;])[\"')\]]*\s+"), "end")
# Top-level definitions in common languages; decorators/annotations stay with what they decorate.
_DEFINITION = Level(
    re.compile(
        r"^(?:(?:@|#\[)[^\n]*\n)*(?:async[ \t]+def|def|class|function|export|public|private|protected|func|fn|"
        r"impl|struct|interface|enum|type|module|package|pub|sub|object|trait)\b",
        re.MULTILINE,
    ),
    "start",
    section=True,
    protected=False,
)
_BLOCK = Level(re.compile(r"\n[ \t]*\n"), "end", protected=False)
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)

PROSE_LEVELS = (_HEADING, _PARAGRAPH, _LINE, _SENTENCE)
CODE_LEVELS = (_DEFINITION, _BLOCK, _LINE)


@dataclass
class _Piece:
    start: int
    end: int
    tokens: int
    section: bool


@dataclass
class _Text:
    """A text with its token start offsets, so any span's token count is two bisections."""

    text: str
    starts: list[int]
    protected: list[tuple[int, int]] = field(default_factory=list)

    def tokens(self, start: int, end: int) -> int:
        return bisect_left(self.starts, end) - bisect_left(self.starts, start)

    def is_protected(self, pos: int) -> bool:
        return any(s < pos < e for s, e in self.protected)


def _cuts(doc: _Text, start: int, end: int, level: Level) -> list[int]:
    cuts = []
    for match in level.pattern.finditer(doc.text, start, end):
        pos = match.start() if level.at == "start" else match.end()
        if start < pos < end and not (level.protected and doc.is_protected(pos)):
            cuts.append(pos)
    return cuts


def _split(doc: _Text, start: int, end: int, levels: Sequence[Level], budget: int, section: bool) -> list[_Piece]:
    tokens = doc.tokens(start, end)
    if tokens <= budget:
        return [_Piece(start, end, tokens, section)] if doc.text[start:end].strip() else []
    for depth, level in enumerate(levels):
        cuts = _cuts(doc, start, end, level)
        if not cuts:
            continue
        bounds = [start, *cuts, end]
        pieces: list[_Piece] = []
        for i, (s, e) in enumerate(zip(bounds, bounds[1:], strict=False)):
            first = section if i == 0 else level.section
            pieces.extend(_split(doc, s, e, levels[depth + 1 :], budget, first))
        return pieces
    return _token_windows(doc, start, end, budget, section)


def _token_windows(doc: _Text, start: int, end: int, budget: int, section: bool) -> list[_Piece]:
    """Last resort for a run without any boundary (a huge word, a minified line): cut between tokens."""
    first, last = bisect_left(doc.starts, start), bisect_left(doc.starts, end)
    pieces = []
    for i in range(first, last, budget):
        s = start if i == first else doc.starts[i]
        e = doc.starts[i + budget] if i + budget < last else end
        pieces.append(_Piece(s, e, doc.tokens(s, e), section and i == first))
    return pieces


def _overlap_start(doc: _Text, prev_start: int, prev_end: int, overlap: int, line_snap: bool) -> int:
    """Where the repeated tail of the previous chunk starts: ≤ overlap tokens, snapped to a word/line start."""
    if overlap <= 0:
        return prev_end
    end_idx = bisect_left(doc.starts, prev_end)
    idx = max(bisect_left(doc.starts, prev_start) + 1, end_idx - overlap)
    if idx >= end_idx:
        return prev_end
    pos = doc.starts[idx]
    boundary = "\n" if line_snap else None
    while pos < prev_end and pos > 0 and not _is_boundary(doc.text[pos - 1], boundary):
        pos += 1
    return pos if pos < prev_end else prev_end


def _is_boundary(char: str, boundary: str | None) -> bool:
    return char == boundary if boundary else char.isspace()


def _pack(doc: _Text, pieces: list[_Piece], params: ChunkingParams, line_snap: bool) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    cur_start: int | None = None
    cur_end = 0
    cur_tokens = 0
    for piece in pieces:
        if cur_start is not None:
            section_break = piece.section and cur_tokens >= params.min_section_tokens
            if section_break or cur_tokens + doc.tokens(cur_end, piece.end) > params.chunk_tokens:
                spans.append((cur_start, cur_end))
                cur_start = None
                if not section_break:
                    start = _overlap_start(doc, spans[-1][0], cur_end, params.overlap_tokens, line_snap)
                    # The overlap shrinks so that it and the next piece always fit together.
                    while start < cur_end and doc.tokens(start, piece.end) > params.chunk_tokens:
                        start = _overlap_start(doc, start, cur_end, doc.tokens(start, cur_end) // 2, line_snap)
                    if start < cur_end:
                        cur_start = start
        if cur_start is None:
            cur_start = piece.start
        cur_end = piece.end
        cur_tokens = doc.tokens(cur_start, cur_end)
    if cur_start is not None:
        spans.append((cur_start, cur_end))
    return spans


def _strip_span(text: str, start: int, end: int, keep_indent: bool) -> tuple[int, int]:
    while end > start and text[end - 1].isspace():
        end -= 1
    while start < end and (text[start] == "\n" if keep_indent else text[start].isspace()):
        start += 1
    return start, end


def split_text(
    text: str, counter: ChunkTokenizer, params: ChunkingParams, code: bool = False, reserve_tokens: int = 0
) -> list[str]:
    """Chunks of `text` (contiguous slices), each within `params.chunk_tokens` and the model window less
    `reserve_tokens` (room kept for what prefixes every chunk when it is embedded, e.g. the title)."""
    if not text.strip():
        return []
    specials = counter.count_tokens([""])[0]  # [CLS]/[SEP]
    window = max(counter.max_seq_length - specials - reserve_tokens, 16)
    budget = min(params.chunk_tokens, window)
    params = params.model_copy(
        update={"chunk_tokens": budget, "overlap_tokens": min(params.overlap_tokens, budget // 2)}
    )
    doc = _Text(text, [s for s, _ in counter.token_offsets(text)])
    if not code:
        doc.protected = [(m.start(), m.end()) for m in _FENCE.finditer(text)]
    levels = CODE_LEVELS if code else PROSE_LEVELS
    pieces = _split(doc, 0, len(text), levels, budget, section=True)
    spans = [_strip_span(text, s, e, keep_indent=code) for s, e in _pack(doc, pieces, params, line_snap=code)]
    chunks = [text[s:e] for s, e in spans if text[s:e].strip()]
    return _enforce_window(chunks, counter, window, specials)


def _enforce_window(chunks: list[str], counter: ChunkTokenizer, window: int, specials: int) -> list[str]:
    """Re-tokenise each chunk on its own; a chunk over the window (rare: sub-word cuts) is halved until it fits."""
    out: list[str] = []
    for chunk, count in zip(chunks, counter.count_tokens(chunks), strict=True):
        if count - specials <= window:
            out.append(chunk)
            continue
        offsets = counter.token_offsets(chunk)
        mid = offsets[len(offsets) // 2][0]
        out.extend(_enforce_window([chunk[:mid].rstrip(), chunk[mid:].lstrip()], counter, window, specials))
    return [c for c in out if c.strip()]


# --- index text: what is embedded and term-weighted for a chunk ------------------------------------------------
def index_prefix(title: str, params: ChunkingParams | None = None) -> str:
    """'<title>\n\n' (cut to MAX_TITLE_CHARS at a word boundary), or '' when the title prefix is off/empty."""
    if params is not None and not params.title_prefix:
        return ""
    title = " ".join(title.split())
    if len(title) > MAX_TITLE_CHARS:
        title = title[:MAX_TITLE_CHARS].rsplit(" ", 1)[0]
    return f"{title}\n\n" if title else ""


def index_text(chunk: Chunk, params: ChunkingParams | None = None) -> str:
    """The text the embedding model and the sparse vector see for `chunk`: its document's title, then the chunk."""
    return index_prefix(chunk.title, params) + chunk.text


# --- per-category chunkers (one registry) ---------------------------------------------------------------------
def _chunk_prose(
    document: CleanedDocument, counter: ChunkTokenizer, params: ChunkingParams, reserve: int
) -> list[tuple[str, dict]]:
    return [(text, {}) for text in split_text(document.text, counter, params, reserve_tokens=reserve)]


def _chunk_code(
    document: CleanedDocument, counter: ChunkTokenizer, params: ChunkingParams, reserve: int
) -> list[tuple[str, dict]]:
    out = []
    for path, code in split_repository_files(document.text):  # never across files
        pieces = split_text(code, counter, params, code=True, reserve_tokens=reserve)
        out.extend((text, {"path": path}) for text in pieces)
    return out


CHUNKERS = {
    DataCategory.ARTICLES: _chunk_prose,
    DataCategory.POSTS: _chunk_prose,
    DataCategory.REPOSITORIES: _chunk_code,
}


def chunk_document(
    document: CleanedDocument, counter: ChunkTokenizer, params: ChunkingParams | None = None
) -> list[Chunk]:
    """Chunks with deterministic ids (document id, position, text): re-runs upsert the same points.

    `token_count` counts the chunk's index text (title prefix included), i.e. what the embedding model reads."""
    params = params or DEFAULT_CHUNKING[document.category]
    prefix = index_prefix(document.title, params)
    reserve = 0
    if prefix:  # the title's own tokens (the specials are counted once, by split_text)
        with_prefix, bare = counter.count_tokens([prefix, ""])
        reserve = with_prefix - bare
    pieces = CHUNKERS[document.category](document, counter, params, reserve)
    counts = counter.count_tokens([prefix + text for text, _ in pieces])
    return [
        Chunk(
            **document.source(),
            id=chunk_id(document.id, position, text),
            document_id=document.id,
            position=position,
            text=text,
            token_count=count,
            metadata=metadata,
        )
        for position, ((text, metadata), count) in enumerate(zip(pieces, counts, strict=True))
    ]


__all__ = [
    "CHUNKERS",
    "DEFAULT_CHUNKING",
    "ChunkingParams",
    "chunk_document",
    "index_prefix",
    "index_text",
    "split_text",
]
