from tiny_rag import HybridIndex, chunk_tokens, reciprocal_rank_fusion

DOCS = [
    "Qdrant stores dense vectors and supports payload filters.",
    "BM25 is a sparse lexical ranking function with k1 and b parameters.",
    "Cross-encoders rerank a short candidate list by reading query and passage together.",
    "MongoDB keeps the raw crawled documents before cleaning.",
]


def test_chunk_tokens_overlap():
    text = " ".join(str(i) for i in range(10))
    chunks = chunk_tokens(text, size=4, overlap=1)
    assert chunks == ["0 1 2 3", "3 4 5 6", "6 7 8 9"]


def test_chunk_tokens_empty():
    assert chunk_tokens("   ") == []


def test_rrf_prefers_documents_ranked_high_twice():
    scores = reciprocal_rank_fusion([[1, 2, 3], [1, 3, 2]], k=60)
    assert max(scores, key=scores.get) == 1
    assert scores[1] == 2 / 61


def test_hybrid_search_finds_bm25_doc():
    index = HybridIndex(DOCS)
    hits = index.search("bm25 ranking parameters", top_k=2)
    assert hits[0].index == 1
    assert hits[0].score > 0


def test_no_match_returns_nothing():
    index = HybridIndex(DOCS)
    assert index.search("zzzz", top_k=3) == []
