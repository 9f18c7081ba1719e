"""Retrieval evaluation on a BEIR split: quality metrics plus encode throughput and query latency."""

from __future__ import annotations

import logging
import random
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from sentence_transformers.evaluation import InformationRetrievalEvaluator

from fintune.data.beir import BeirData
from fintune.metrics.retrieval import Qrels, average_precision_at, mean_metrics, ndcg_at, per_query_metrics

log = logging.getLogger(__name__)

TOP_K = 100
LATENCY_SAMPLE = 50  # single-query timings; enough for a stable p95 without slowing the run


class EncodeCall(Protocol):
    """The encode call evaluation makes: texts in, one normalised tensor row each out."""

    def __call__(
        self,
        sentences: list[str],
        /,
        *,
        batch_size: int = ...,
        convert_to_tensor: Literal[True],
        normalize_embeddings: bool = ...,
        show_progress_bar: bool | None = ...,
    ) -> torch.Tensor: ...


class Encoder(Protocol):
    """What evaluation calls: a SentenceTransformer, or an OnnxEmbedder for an ONNX export (`load_embedder`)."""

    @property
    def encode_query(self) -> EncodeCall: ...

    @property
    def encode_document(self) -> EncodeCall: ...


@dataclass
class RetrievalResult:
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    rankings: dict[str, list[str]]  # query id -> top doc ids


def encode_corpus(model: Encoder, data: BeirData, batch_size: int = 64) -> torch.Tensor:
    texts = [data.doc_text(d) for d in data.corpus]
    return model.encode_document(
        texts, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=True
    )


def evaluate_retrieval(
    model: Encoder,
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
    top = top_k_rankings(queries @ corpus.T, doc_ids, k)
    rankings = dict(zip(query_ids, top, strict=True))
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


def top_k_rankings(scores: torch.Tensor, doc_ids: list[str], k: int) -> list[list[str]]:
    """The `k` best doc ids of each row of `scores` (queries x docs), best first. Equal scores (duplicate
    passages) go in ascending id order, as sentence-transformers' evaluator puts them: `topk` alone
    orders ties arbitrarily, and the card and early stopping would rank the same tie differently."""
    order = sorted(range(len(doc_ids)), key=doc_ids.__getitem__)
    ids = [doc_ids[i] for i in order]
    scores = scores[:, order]  # columns in id order: a stable sort then breaks ties by id
    values, top = torch.topk(scores, k=k, dim=1)
    tied = (values[:, 1:] == values[:, :-1]).any(dim=1) | ((scores >= values[:, -1:]).sum(dim=1) > k)
    if tied.any():  # rare with real vectors: sort only those rows in full
        rows = tied.nonzero().squeeze(1)
        top[rows] = torch.sort(scores[rows], dim=1, descending=True, stable=True).indices[:, :k]
    return [[ids[i] for i in row] for row in top.tolist()]


class GradedIREvaluator(InformationRetrievalEvaluator):
    """sentence-transformers' evaluator, with NDCG and MAP from `fintune.metrics.retrieval`, so early
    stopping and the card score a ranking alike. The library reads relevance as a set (every grade
    counts 1 in NDCG) and divides AP@k by min(k, relevant docs); its recall, precision and MRR are
    fintune's already (tests/unit/embed/test_metric_agreement.py)."""

    def __init__(self, queries: Mapping[str, str], corpus: Mapping[str, str], qrels: Qrels, **kwargs: Any):
        super().__init__(dict(queries), dict(corpus), {q: set(docs) for q, docs in qrels.items()}, **kwargs)
        self.grades = qrels

    def compute_metrics(self, queries_result_list: list[Any]) -> dict[str, dict[int, float]]:
        scores = super().compute_metrics(queries_result_list)
        # the library's order: score descending, then corpus id ascending
        rankings = [
            [h["corpus_id"] for h in sorted(hits, key=lambda h: (-h["score"], h["corpus_id"]))]
            for hits in queries_result_list
        ]
        grades = [self.grades[qid] for qid in self.queries_ids]
        for key, fn, ks in (("ndcg@k", ndcg_at, self.ndcg_at_k), ("map@k", average_precision_at, self.map_at_k)):
            scores[key] = {k: statistics.fmean(fn(r, g, k) for r, g in zip(rankings, grades, strict=True)) for k in ks}
        return scores


def ir_evaluator(data: BeirData, seed: int = 42, distractors: int = 1000) -> GradedIREvaluator:
    """The evaluator for scoring during training (early stopping, tuning), on the judged passages plus a
    fixed random sample of distractors, so each evaluation costs seconds, not a full corpus pass (its
    figures are higher than the full-corpus ones in the card: fewer passages compete)."""
    relevant = {d for docs in data.qrels.values() for d in docs}
    others = [d for d in data.corpus if d not in relevant]
    sample = random.Random(seed).sample(others, min(distractors, len(others)))
    corpus = {d: data.doc_text(d) for d in [*relevant, *sample]}
    return GradedIREvaluator(
        data.queries,
        corpus,
        data.qrels,
        name="dev",
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[1, 10],
        precision_recall_at_k=[10],
        map_at_k=[100],
        show_progress_bar=False,
    )


def _query_latencies_ms(model: Encoder, queries: list[str], corpus: torch.Tensor, k: int) -> list[float]:
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
