"""Hybrid search: a keyword ranking and a vector ranking fused by weighted reciprocal-rank fusion (RRF).

Keyword search (BM25-like full-text search in each store) and vector search fail on different questions:
exact names, tickers and figures favour keywords, paraphrases favour vectors. RRF combines rankings, not
scores, so a BM25 score and a cosine never need to share a scale (Cormack, Clarke & Buettcher, 2009):

    fused(d) = sum_i  w_i / (k + rank_i(d))     rank 1-based; a ranking without d adds nothing

Written here rather than taken from a store: langchain-postgres' `reciprocal_rank_fusion` has no weights
and LanceDB's `RRFReranker` works on LanceDB results only; one function keeps the three stores' fusion
identical (and testable by hand).
"""

from __future__ import annotations

from dataclasses import dataclass

from fintune.errors import UsageError

RRF_K = 60  # the paper's constant: damps the weight of the very first ranks


@dataclass(frozen=True)
class HybridSettings:
    """How a hybrid search fuses its two rankings."""

    vector_weight: float = 1.0  # weight of the vector (cosine) ranking in the fusion
    keyword_weight: float = 1.0  # weight of the keyword (full-text) ranking in the fusion
    rrf_k: int = RRF_K  # RRF's rank offset: larger flattens the difference between top ranks
    candidates: int = 50  # documents read from each side before fusing (at least k)

    def __post_init__(self) -> None:
        if self.vector_weight < 0 or self.keyword_weight < 0:
            raise UsageError(
                f"hybrid weights must be >= 0 (vector {self.vector_weight}, keyword {self.keyword_weight})"
            )
        if self.vector_weight == 0 and self.keyword_weight == 0:
            raise UsageError("hybrid search needs a positive vector or keyword weight")
        if self.rrf_k < 0:
            raise UsageError(f"rrf_k must be >= 0, not {self.rrf_k}")
        if self.candidates < 1:
            raise UsageError(f"hybrid candidates must be >= 1, not {self.candidates}")

    def depth(self, k: int) -> int:
        """How many documents each side returns for a top-k fused result."""
        return max(self.candidates, k)


def rrf(rankings: list[list[str]], weights: list[float], k: int = RRF_K) -> list[tuple[str, float]]:
    """Fuse rankings of ids (best first) into one: (id, fused score), best first.

    Ties (equal fused score) go to the id with the better best rank, then to the ranking given first
    (callers pass the vector ranking first), then to the smaller id: the order never depends on dicts or
    hashing. An id repeated within one ranking counts at its first rank only; a ranking of weight 0 adds
    no ids.
    """
    if len(rankings) != len(weights):
        raise ValueError(f"{len(rankings)} rankings but {len(weights)} weights")
    scores: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}  # id -> (best rank, index of the ranking that gave it)
    for which, (ranking, weight) in enumerate(zip(rankings, weights, strict=True)):
        if weight == 0:
            continue
        seen: set[str] = set()
        for rank, doc in enumerate(ranking, 1):
            if doc in seen:
                continue
            seen.add(doc)
            scores[doc] = scores.get(doc, 0.0) + weight / (k + rank)
            best[doc] = min(best.get(doc, (rank, which)), (rank, which))
    return sorted(scores.items(), key=lambda item: (-item[1], best[item[0]], item[0]))
