"""Retrieval metrics from ranked lists, per query and averaged.

Written here rather than taken from sentence-transformers' evaluator because the comparison report
needs per-query values and these exact keys; each is a few lines and tested against hand values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Rankings = Mapping[str, Sequence[str]]  # query id -> doc ids, best first
Qrels = Mapping[str, Mapping[str, float]]  # query id -> relevant doc id -> grade (> 0)


def ndcg_at(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    dcg = sum(relevant.get(doc, 0.0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(grade / math.log2(i + 2) for i, grade in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    return next((1.0 / (i + 1) for i, doc in enumerate(ranked[:k]) if doc in relevant), 0.0)


def recall_at(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    return sum(doc in relevant for doc in ranked[:k]) / len(relevant) if relevant else 0.0


def precision_at(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    return sum(doc in relevant for doc in ranked[:k]) / k


def average_precision_at(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    """AP@k over all relevant documents (TREC's denominator: every relevant doc, found or not)."""
    hits, total = 0, 0.0
    for i, doc in enumerate(ranked[:k]):
        if doc in relevant:
            hits += 1
            total += hits / (i + 1)
    return total / len(relevant) if relevant else 0.0


METRICS = {
    "ndcg@10": (ndcg_at, 10),
    "mrr@10": (mrr_at, 10),
    "map@100": (average_precision_at, 100),
    "recall@1": (recall_at, 1),
    "recall@5": (recall_at, 5),
    "recall@10": (recall_at, 10),
    "recall@100": (recall_at, 100),
    "precision@1": (precision_at, 1),
    "precision@10": (precision_at, 10),
}


def per_query_metrics(rankings: Rankings, qrels: Qrels) -> dict[str, dict[str, float]]:
    """Every metric for every judged query (a query missing from `rankings` scores 0)."""
    return {
        qid: {name: fn(rankings.get(qid, []), relevant, k) for name, (fn, k) in METRICS.items()}
        for qid, relevant in qrels.items()
    }


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    if not per_query:
        raise ValueError("no judged queries to average")
    n = len(per_query)
    return {name: sum(q[name] for q in per_query.values()) / n for name in METRICS}
