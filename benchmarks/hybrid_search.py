"""Hybrid search on the shared 10-K dev set: vector-only (MiniLM), keyword-only (full-text) and their RRF fusion.

The whole 10-K corpus is indexed with MiniLM into an embedded store (a temporary folder, or --store to keep
it: a re-run then embeds nothing). `--copy-to URL` also copies those rows, vectors included, into another
store (e.g. a PostgreSQL URL) and measures it the same way: its keyword side is that database's own.
Each dev question's vector and keyword rankings are read once, deep enough for every variant, and fused
in this process; the default variant is also run end to end through `Searcher.search(hybrid=...)` to check
it gives the same rankings. Weights and rrf_k are compared on the first half of the dev questions (sorted
ids, "tune") and reported on the second half ("test") and on all. One JSON line per store and variant,
then the machine line.

    .venv/bin/python benchmarks/hybrid_search.py [--store DIR] [--copy-to postgresql://...] [--queries N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line

# (name, vector weight, keyword weight, rrf_k): equal weights at the paper's k first, then a few neighbours
VARIANTS = [
    ("hybrid", 1.0, 1.0, 60),
    ("hybrid_v2_k1", 2.0, 1.0, 60),
    ("hybrid_v1_k2", 1.0, 2.0, 60),
    ("hybrid_rrf20", 1.0, 1.0, 20),
    ("hybrid_rrf100", 1.0, 1.0, 100),
]
DEPTH = 100  # each side's ranking depth: the fused top 10 never needs more at these weights
COPY_BATCH = 500


@dataclass
class Rankings:
    dense: dict[str, list[str]]
    sparse: dict[str, list[str]]
    library: dict[str, list[str]]  # Searcher.search(hybrid=HybridSettings()) top 10
    seconds: dict[str, float]


def rankings(store: Any, qids: list[str], questions: dict[str, str]) -> Rankings:
    from fintune.retrieval.hybrid import HybridSettings
    from fintune.retrieval.search import open_collection

    searcher = open_collection(store, "tenk")
    name, texts = searcher.info.name, [questions[q] for q in qids]
    start = time.perf_counter()
    vectors = searcher.embeddings.embed_queries(texts)
    dense = {
        q: [h.id for h in store.candidates(name, v, DEPTH, None, False)] for q, v in zip(qids, vectors, strict=True)
    }
    dense_s = time.perf_counter() - start
    start = time.perf_counter()
    sparse = {q: [h.id for h in store.keyword_search(name, questions[q], DEPTH, None)] for q in qids}
    sparse_s = time.perf_counter() - start
    start = time.perf_counter()
    fused = searcher.search(texts, k=10, hybrid=HybridSettings(candidates=DEPTH))
    hybrid_s = time.perf_counter() - start
    library = {q: [h.id for h in hits] for q, hits in zip(qids, fused, strict=True)}
    return Rankings(dense, sparse, library, {"vector": dense_s, "keyword": sparse_s, "hybrid": hybrid_s})


def copy_collection(source: Any, target: Any) -> int:
    """The embedded collection's rows (vectors included) into `target` as its live `tenk`: nothing re-embedded."""
    from fintune.retrieval.index import target_version
    from fintune.retrieval.stores.base import Row

    info = source.catalog.resolve("tenk")
    arrow = source.table(info.name).to_arrow()
    copy = target_version(target, "tenk", info.model, info.dimension, info.prefix, list(info.metadata_fields), False)
    columns = {c: arrow[c].to_pylist() for c in ("id", "text", "vector", "metadata", "hash")}
    rows = [
        Row(i, t, v, json.loads(m or "{}"), h)
        for i, t, v, m, h in zip(*(columns[c] for c in ("id", "text", "vector", "metadata", "hash")), strict=True)
    ]
    for begin in range(0, len(rows), COPY_BATCH):
        target.upsert(copy.name, rows[begin : begin + COPY_BATCH])
    print(f"copied {len(rows)} rows to {target.display}: {target.build_index(copy.name)}", file=sys.stderr)
    target.catalog.mark(copy.name, "ready", target.count(copy.name))
    target.catalog.point("tenk", copy.name)
    return len(rows)


def report(store_kind: str, found: Rankings, qids: list[str], qrels: dict[str, dict[str, float]]) -> None:
    from fintune.metrics.retrieval import mean_metrics, per_query_metrics
    from fintune.retrieval.hybrid import rrf

    half = len(qids) // 2
    parts = {"tune": qids[:half], "test": qids[half:], "all": qids}

    def line(name: str, ranked: dict[str, list[str]], **extra: object) -> None:
        out: dict[str, object] = {"store": store_kind, "variant": name, **extra}
        for part, ids in parts.items():
            metrics = mean_metrics(per_query_metrics({q: ranked[q] for q in ids}, {q: qrels[q] for q in ids}))
            out[f"ndcg@10_{part}"] = round(metrics["ndcg@10"], 4)
            out[f"recall@10_{part}"] = round(metrics["recall@10"], 4)
        out["queries"] = {part: len(ids) for part, ids in parts.items()}
        if name in found.seconds:
            out["ms_per_query"] = round(1000 * found.seconds[name] / len(qids), 1)
        print(json.dumps(out), flush=True)

    line("vector", {q: found.dense[q][:10] for q in qids})
    line("keyword", {q: found.sparse[q][:10] for q in qids})
    for name, wv, wk, k in VARIANTS:
        fused = {q: [d for d, _ in rrf([found.dense[q], found.sparse[q]], [wv, wk], k)][:10] for q in qids}
        extra: dict[str, object] = {"vector_weight": wv, "keyword_weight": wk, "rrf_k": k}
        if name == "hybrid":  # the library path must rank as the fusion computed here
            extra["same_as_searcher"] = round(sum(fused[q] == found.library[q] for q in qids) / len(qids), 4)
        line(name, fused, **extra)


def main() -> None:
    from fintune.data.beir import load_beir
    from fintune.data.tasks import get_task
    from fintune.retrieval.corpus import read_corpus
    from fintune.retrieval.index import index_corpus
    from fintune.retrieval.stores import open_store
    from fintune.retrieval.stores.embedded import EmbeddedStore

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="embedded store folder to (re)use; default a temporary one")
    parser.add_argument("--copy-to", help="also measure this store (e.g. postgresql://...), filled with the same rows")
    parser.add_argument("--queries", type=int, default=0, help="only the first N dev questions (0: all)")
    args = parser.parse_args()

    folder = get_task("financial_qa_10k").path("dev")
    data = load_beir(folder, "dev")
    qids = sorted(data.queries)[: args.queries or None]
    store = EmbeddedStore(args.store or tempfile.mkdtemp(prefix="fintune-hybrid-"))
    try:
        result = index_corpus(store, "tenk", read_corpus(folder, skip_invalid=True), model="minilm", progress=False)
        print(f"indexed {result.added} passages in {result.seconds:.0f} s; {result.index_note}", file=sys.stderr)
        report("embedded", rankings(store, qids, data.queries), qids, data.qrels)
        if args.copy_to:
            other = open_store(args.copy_to)
            try:
                copy_collection(store, other)
                report(other.kind, rankings(other, qids, data.queries), qids, data.qrels)
            finally:
                other.close()
    finally:
        store.close()
    print(machine_line())


if __name__ == "__main__":
    main()
