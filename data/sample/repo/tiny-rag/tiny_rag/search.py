"""BM25 + cosine similarity, fused with reciprocal rank fusion. Pure Python."""

import math
from collections import Counter
from dataclasses import dataclass

from tiny_rag.chunking import tokenize


@dataclass(frozen=True)
class Hit:
    index: int
    text: str
    score: float


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = 60) -> dict[int, float]:
    """Fuse several rankings (lists of document ids, best first) into RRF scores."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
    return scores


class HybridIndex:
    def __init__(self, documents: list[str], k1: float = 1.5, b: float = 0.75) -> None:
        self.documents = list(documents)
        self.k1 = k1
        self.b = b
        self._tokens = [tokenize(doc) for doc in self.documents]
        self._counts = [Counter(tokens) for tokens in self._tokens]
        self._avg_len = sum(len(t) for t in self._tokens) / max(len(self._tokens), 1)
        doc_freq: Counter[str] = Counter()
        for counts in self._counts:
            doc_freq.update(counts.keys())
        n_docs = len(self.documents)
        self._idf = {
            term: math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)) for term, df in doc_freq.items()
        }
        self._norms = [math.sqrt(sum(v * v for v in counts.values())) for counts in self._counts]

    def bm25(self, query: str) -> list[float]:
        terms = tokenize(query)
        scores = []
        for tokens, counts in zip(self._tokens, self._counts):
            length_norm = 1.0 - self.b + self.b * len(tokens) / (self._avg_len or 1.0)
            score = 0.0
            for term in terms:
                tf = counts.get(term, 0)
                if tf:
                    score += self._idf[term] * tf * (self.k1 + 1.0) / (tf + self.k1 * length_norm)
            scores.append(score)
        return scores

    def cosine(self, query: str) -> list[float]:
        q_counts = Counter(tokenize(query))
        q_norm = math.sqrt(sum(v * v for v in q_counts.values()))
        scores = []
        for counts, norm in zip(self._counts, self._norms):
            if not norm or not q_norm:
                scores.append(0.0)
                continue
            dot = sum(q_counts[t] * counts.get(t, 0) for t in q_counts)
            scores.append(dot / (norm * q_norm))
        return scores

    def search(self, query: str, top_k: int = 5, rrf_k: int = 60) -> list[Hit]:
        rankings = []
        for scores in (self.bm25(query), self.cosine(query)):
            ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
            rankings.append([i for i in ranked if scores[i] > 0])
        fused = reciprocal_rank_fusion(rankings, k=rrf_k)
        best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:top_k]
        return [Hit(index=i, text=self.documents[i], score=s) for i, s in best]
