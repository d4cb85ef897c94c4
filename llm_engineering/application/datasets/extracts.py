"""Split cleaned documents into answer-sized extracts: contiguous slices of the author's text, cut on paragraph
boundaries and bounded in the base model's tokens. A fenced code block (or a top-level definition of a
repository file) is never cut: one that does not fit the upper bound is left out and counted.

Headings (and repository file headers) start a new section and are not part of any extract: an extract is what
the author wrote under a heading, so it reads as an answer. Pieces under the lower bound are merged with their
neighbours inside the section when they fit, else left out and counted.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field, model_validator

from llm_engineering.application.ports import PromptTokenCounter
from llm_engineering.domain.chunks import CleanedDocument
from llm_engineering.domain.datasets import DropReason, Extract

_FENCE_OPEN = re.compile(r"^[ \t]*(```|~~~)")
_HEADING = re.compile(r"^#{1,6}[ \t]+\S")
_FILE_HEADER = re.compile(r"^### File: (?P<path>.+)$", re.MULTILINE)
_HASHTAGS_ONLY = re.compile(r"^(?:\s*#\w+)+\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])[ \t]+(?=[\"'(\[A-Z0-9])")
PROSE_FILE_SUFFIXES = (".md", ".markdown", ".rst", ".txt")


class ExtractConfig(BaseModel):
    """Bounds in the base model's tokens. Blocks are packed into the current extract while it holds fewer than
    `target_tokens` and the result stays within `max_tokens`."""

    min_tokens: int = Field(default=64, ge=1)
    target_tokens: int = Field(default=160, ge=1)
    max_tokens: int = Field(default=384, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> ExtractConfig:
        if not self.min_tokens <= self.target_tokens <= self.max_tokens:
            raise ValueError("extracts need min_tokens <= target_tokens <= max_tokens")
        return self


@dataclass
class Block:
    start: int
    end: int
    kind: str  # prose | code | heading
    tokens: int = 0


@dataclass
class ExtractionResult:
    extracts: list[Extract]
    drops: Counter[str]


def _line_spans(text: str) -> list[tuple[int, int]]:
    spans, position = [], 0
    for line in text.splitlines(keepends=True):
        spans.append((position, position + len(line.rstrip("\r\n"))))
        position += len(line)
    return spans


def markdown_blocks(text: str, offset: int = 0) -> list[Block]:
    """Headings, fenced code blocks (whole, blank lines included) and blank-line-separated paragraphs."""
    blocks: list[Block] = []
    lines = _line_spans(text)
    i = 0
    paragraph_start: int | None = None
    paragraph_end = 0

    def close_paragraph() -> None:
        nonlocal paragraph_start
        if paragraph_start is not None:
            blocks.append(Block(offset + paragraph_start, offset + paragraph_end, "prose"))
            paragraph_start = None

    while i < len(lines):
        start, end = lines[i]
        line = text[start:end]
        fence = _FENCE_OPEN.match(line)
        if fence:
            close_paragraph()
            marker = fence.group(1)
            j = i + 1
            while j < len(lines) and not text[lines[j][0] : lines[j][1]].lstrip().startswith(marker):
                j += 1
            j = min(j, len(lines) - 1)  # an unclosed fence runs to the end of the text
            blocks.append(Block(offset + start, offset + lines[j][1], "code"))
            i = j + 1
            continue
        if not line.strip():
            close_paragraph()
        elif _HEADING.match(line):
            close_paragraph()
            blocks.append(Block(offset + start, offset + end, "heading"))
        else:
            if paragraph_start is None:
                paragraph_start = start
            paragraph_end = end
        i += 1
    close_paragraph()
    return blocks


def code_blocks(text: str, offset: int = 0) -> list[Block]:
    """Source code: blocks end at a blank line followed by a top-level (unindented) line, so a definition with
    blank lines inside stays whole."""
    blocks: list[Block] = []
    lines = _line_spans(text)
    start: int | None = None
    end = 0
    blank_before = False
    for line_start, line_end in lines:
        line = text[line_start:line_end]
        if not line.strip():
            blank_before = True
            continue
        top_level = not line[:1].isspace()
        if start is not None and blank_before and top_level:
            blocks.append(Block(offset + start, offset + end, "code"))
            start = None
        if start is None:
            start = line_start
        end = line_end
        blank_before = False
    if start is not None:
        blocks.append(Block(offset + start, offset + end, "code"))
    return blocks


def document_sections(document: CleanedDocument) -> list[tuple[str, list[Block]]]:
    """(section name, blocks) in document order. Repositories: one section per file (`### File: path`)."""
    text = document.text
    if str(document.category) != "repositories":
        return _split_on_headings(text, markdown_blocks(text), "")
    sections: list[tuple[str, list[Block]]] = []
    headers = list(_FILE_HEADER.finditer(text))
    for number, header in enumerate(headers):
        path = header.group("path").strip()
        body_start = header.end()
        body_end = headers[number + 1].start() if number + 1 < len(headers) else len(text)
        body = text[body_start:body_end]
        if path.lower().endswith(PROSE_FILE_SUFFIXES):
            sections += _split_on_headings(text, markdown_blocks(body, body_start), path)
        else:
            sections.append((path, code_blocks(body, body_start)))
    return sections


def _split_on_headings(text: str, blocks: Sequence[Block], prefix: str) -> list[tuple[str, list[Block]]]:
    sections: list[tuple[str, list[Block]]] = [(prefix, [])]
    for block in blocks:
        if block.kind == "heading":
            heading = text[block.start : block.end].lstrip("#").strip()
            sections.append((f"{prefix} › {heading}" if prefix else heading, []))
        elif not (block.kind == "prose" and _HASHTAGS_ONLY.match(text[block.start : block.end])):
            sections[-1][1].append(block)  # a line of hashtags only is platform furniture, not an answer
    return [(name, section) for name, section in sections if section]


def _sentence_blocks(text: str, block: Block) -> list[Block]:
    """A prose paragraph over the upper bound, cut between sentences (still contiguous slices)."""
    pieces, start = [], block.start
    for match in _SENTENCE_END.finditer(text, block.start, block.end):
        pieces.append(Block(start, match.start(), "prose"))
        start = match.end()
    pieces.append(Block(start, block.end, "prose"))
    return pieces


class ExtractSplitter:
    """Cuts cleaned documents into extracts measured with the base model's tokenizer."""

    def __init__(self, counter: PromptTokenCounter, config: ExtractConfig | None = None) -> None:
        self.counter = counter
        self.config = config or ExtractConfig()

    def split(self, documents: Iterable[CleanedDocument]) -> ExtractionResult:
        extracts: list[Extract] = []
        drops: Counter[str] = Counter()
        for document in documents:
            found, dropped = self.split_document(document)
            extracts += found
            drops.update(dropped)
        return ExtractionResult(extracts, drops)

    def split_document(self, document: CleanedDocument) -> tuple[list[Extract], Counter[str]]:
        text = document.text
        drops: Counter[str] = Counter()
        spans: list[tuple[str, int, int, bool]] = []  # (section, start, end, has_code)
        for section, blocks in document_sections(document):
            for start, end, has_code in self._pack(text, blocks, drops):
                spans.append((section, start, end, has_code))
        extracts = [
            Extract(
                document_id=document.id,
                position=position,
                text=text[start:end],
                token_count=self._count(text[start:end]),
                section=section,
                has_code=has_code,
                author=document.author_full_name,
                link=document.link,
                title=document.title,
                category=str(document.category),
            )
            for position, (section, start, end, has_code) in enumerate(spans)
        ]
        return extracts, drops

    def _count(self, text: str) -> int:
        return self.counter.count(text)

    def _measured(self, text: str, blocks: Sequence[Block], drops: Counter[str]) -> list[Block]:
        """Every block with its token count; prose over the bound is cut between sentences, code never."""
        limit = self.config.max_tokens
        out: list[Block] = []
        for block in blocks:
            block.tokens = self._count(text[block.start : block.end])
            if block.tokens <= limit:
                out.append(block)
                continue
            if block.kind == "code":
                drops[DropReason.EXTRACT_TOO_LONG] += 1
                continue
            for piece in _sentence_blocks(text, block):
                piece.tokens = self._count(text[piece.start : piece.end])
                if piece.tokens <= limit:
                    out.append(piece)
                else:
                    drops[DropReason.EXTRACT_TOO_LONG] += 1
        return out

    def _pack(self, text: str, blocks: Sequence[Block], drops: Counter[str]) -> list[tuple[int, int, bool]]:
        config = self.config
        groups: list[list[Block]] = []
        current: list[Block] = []
        current_tokens = 0
        for block in self._measured(text, blocks, drops):
            if current:
                joined = self._count(text[current[0].start : block.end])
                lead_in = text[current[-1].start : current[-1].end].rstrip().endswith(":")  # "For example:"
                if (current_tokens < config.target_tokens or lead_in) and joined <= config.max_tokens:
                    current.append(block)
                    current_tokens = joined
                    continue
                groups.append(current)
            current, current_tokens = [block], block.tokens
        if current:
            groups.append(current)
        # A piece under the lower bound joins the extract before it when the result fits, else the one after it.
        merged: list[list[Block]] = []
        pending: list[Block] = []
        for group in groups:
            if pending:
                if self._span_tokens(text, pending + group) <= config.max_tokens:
                    group = pending + group
                else:
                    drops[DropReason.EXTRACT_TOO_SHORT] += 1
                pending = []
            if self._span_tokens(text, group) >= config.min_tokens:
                merged.append(group)
            elif merged and self._span_tokens(text, merged[-1] + group) <= config.max_tokens:
                merged[-1] = merged[-1] + group
            else:
                pending = group
        if pending:
            drops[DropReason.EXTRACT_TOO_SHORT] += 1
        return [(g[0].start, g[-1].end, any(b.kind == "code" for b in g)) for g in merged]

    def _span_tokens(self, text: str, group: Sequence[Block]) -> int:
        return self._count(text[group[0].start : group[-1].end])
