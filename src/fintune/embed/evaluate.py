"""Retrieval evaluation on a BEIR split: quality metrics plus encode throughput and query latency."""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass

import torch
from sentence_transformers import SentenceTransformer

from fintune.data.beir import BeirData
from fintune.metrics.retrieval import mean_metrics, per_query_metrics

log = logging.getLogger(__name__)

TOP_K = 100
LATENCY_SAMPLE = 50  # single-query timings; enough for a stable p95 without slowing the run


@dataclass
class RetrievalResult:
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    rankings: dict[str, list[str]]  # query id -> top doc ids


def evaluate_retrieval(model: SentenceTransformer, data: BeirData, batch_size: int = 64) -> RetrievalResult:
    doc_ids = list(data.corpus)
    texts = [data.doc_text(d) for d in doc_ids]
    start = time.perf_counter()
    corpus = model.encode(
        texts, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=True
    )
    encode_s = time.perf_counter() - start
    query_ids = list(data.queries)
    queries = model.encode(
        [data.queries[q] for q in query_ids], batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True
    )
    k = min(TOP_K, len(doc_ids))
    top = torch.topk(queries @ corpus.T, k=k, dim=1).indices.tolist()
    rankings = {qid: [doc_ids[i] for i in row] for qid, row in zip(query_ids, top, strict=True)}
    per_query = per_query_metrics(rankings, data.qrels)
    metrics = mean_metrics(per_query)
    latencies = _query_latencies_ms(model, [data.queries[q] for q in query_ids[:LATENCY_SAMPLE]], corpus, k)
    metrics.update(
        queries=len(query_ids),
        corpus_size=len(doc_ids),
        corpus_docs_per_s=len(doc_ids) / encode_s,
        query_latency_ms_p50=statistics.median(latencies),
        query_latency_ms_p95=_percentile(latencies, 95),
    )
    return RetrievalResult(metrics=metrics, per_query=per_query, rankings=rankings)


def _query_latencies_ms(model: SentenceTransformer, queries: list[str], corpus: torch.Tensor, k: int) -> list[float]:
    """One query at a time, as a user searches: encode, score the corpus, take the top k."""
    out = []
    for query in queries:
        start = time.perf_counter()
        vec = model.encode([query], convert_to_tensor=True, normalize_embeddings=True)
        torch.topk(vec @ corpus.T, k=k, dim=1)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
