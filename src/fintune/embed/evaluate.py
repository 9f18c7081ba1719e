"""Retrieval evaluation on a BEIR split: quality metrics plus encode throughput and query latency."""

from __future__ import annotations

import logging
import random
import statistics
import time
from dataclasses import dataclass

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.evaluation import InformationRetrievalEvaluator

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


def encode_corpus(model: SentenceTransformer, data: BeirData, batch_size: int = 64) -> torch.Tensor:
    texts = [data.doc_text(d) for d in data.corpus]
    return model.encode_document(
        texts, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=True
    )


def evaluate_retrieval(
    model: SentenceTransformer,
    data: BeirData,
    batch_size: int = 64,
    corpus_embeddings: torch.Tensor | None = None,
) -> RetrievalResult:
    """Metrics of `model` on `data`; pass `corpus_embeddings` to reuse an encoding of this same model
    (then `corpus_docs_per_s` is left out: nothing was timed)."""
    doc_ids = list(data.corpus)
    start = time.perf_counter()
    corpus = corpus_embeddings if corpus_embeddings is not None else encode_corpus(model, data, batch_size)
    encode_s = time.perf_counter() - start
    query_ids = list(data.queries)
    queries = model.encode_query(
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
        query_latency_ms_p50=statistics.median(latencies),
        query_latency_ms_p95=_percentile(latencies, 95),
    )
    if corpus_embeddings is None:
        metrics["corpus_docs_per_s"] = len(doc_ids) / encode_s
    return RetrievalResult(metrics=metrics, per_query=per_query, rankings=rankings)


def ir_evaluator(data: BeirData, seed: int = 42, distractors: int = 1000) -> InformationRetrievalEvaluator:
    """sentence-transformers' evaluator for scoring during training, on the judged passages plus a
    fixed random sample of distractors, so each evaluation costs seconds, not a full corpus pass."""
    relevant = {d for docs in data.qrels.values() for d in docs}
    others = [d for d in data.corpus if d not in relevant]
    sample = random.Random(seed).sample(others, min(distractors, len(others)))
    corpus = {d: data.doc_text(d) for d in [*relevant, *sample]}
    return InformationRetrievalEvaluator(
        data.queries,
        corpus,
        {q: set(docs) for q, docs in data.qrels.items()},
        name="dev",
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[1, 10],
        precision_recall_at_k=[10],
        map_at_k=[100],
        show_progress_bar=False,
    )


def _query_latencies_ms(model: SentenceTransformer, queries: list[str], corpus: torch.Tensor, k: int) -> list[float]:
    """One query at a time, as a user searches: encode, score the corpus, take the top k."""
    out = []
    for query in queries:
        start = time.perf_counter()
        vec = model.encode_query([query], convert_to_tensor=True, normalize_embeddings=True)
        torch.topk(vec @ corpus.T, k=k, dim=1)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
