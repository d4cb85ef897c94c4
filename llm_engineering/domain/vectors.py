"""Pure retrieval types shared by the application and the vector-store adapters."""

from __future__ import annotations

from dataclasses import dataclass

# The constant of Cormack et al. (2009) for reciprocal rank fusion: damps the weight of the very first ranks.
# One value for client-side fusion (application/rag/fusion.py) and for the stores' own hybrid queries.
RRF_K = 60


@dataclass(frozen=True)
class SparseVec:
    """A sparse lexical vector (BM25-style term weights keyed by stable term indices)."""

    indices: list[int]
    values: list[float]
