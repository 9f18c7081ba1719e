"""Vector stores at scale: 100k+ real financial passages, indexing speed, search latency, recall vs exact.

Passages: the shared 10-K corpus plus the ECTSum earnings-call transcripts (train and dev) cut into
~56-word windows. They are encoded once with MiniLM's int8 ONNX export (cached under $FINTUNE_HOME/bench),
then stored in each store; recall@10 of the store's approximate index is measured against exact
brute-force search over the same vectors, for the 10-K dev questions.

    .venv/bin/python benchmarks/vector_store.py [--stores embedded,pgvector] [--limit 110000] [--queries 500]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line, peak_rss_mb

WINDOW = 56  # words per transcript passage


def passages(limit: int) -> tuple[list[str], list[str], list[dict]]:
    from fintune.data.beir import load_beir
    from fintune.data.readers import read_jsonl
    from fintune.data.tasks import get_task

    data = load_beir(get_task("financial_qa_10k").path("dev"), "dev")
    ids = list(data.corpus)
    texts = [data.doc_text(d) for d in ids]
    meta = [{"source": "10-K", "ticker": data.corpus[d].get("ticker", "")} for d in ids]
    ectsum = get_task("ectsum").path("train").parent
    for split in ("train", "dev"):
        for item in read_jsonl(ectsum / f"{split}.jsonl"):
            rec = getattr(item, "value", None)
            if not isinstance(rec, dict):
                continue
            words = rec["transcript"].split()
            for n, start in enumerate(range(0, len(words), WINDOW)):
                ids.append(f"{rec['id']}#{n}")
                texts.append(" ".join(words[start : start + WINDOW]))
                meta.append({"source": "ECTSum", "ticker": rec["id"].split("_")[0]})
                if len(ids) >= limit:
                    return ids, texts, meta
    return ids, texts, meta


def encode(texts: list[str], cache: Path) -> tuple[np.ndarray, float]:
    """Vectors of `texts` (cached), and the encoder's docs/s when they were computed now (0 if cached)."""
    if cache.is_file():
        vectors = np.load(cache)
        if len(vectors) == len(texts):
            return vectors, 0.0
    from fintune.embed.export import export_onnx
    from fintune.embed.model import load_embedder

    folder = cache.parent / "minilm-int8"
    if not folder.is_dir():
        export_onnx("minilm", folder, quantize="int8")
    model = load_embedder(str(folder))
    start = time.perf_counter()
    vectors = model.encode_document(texts, batch_size=64, show_progress_bar=True)
    rate = len(texts) / (time.perf_counter() - start)
    np.save(cache, vectors)
    return vectors, rate


def bench_store(kind: str, url: str, ids, texts, meta, vectors, queries: np.ndarray, exact: np.ndarray) -> dict:
    from tqdm.auto import tqdm

    from fintune.retrieval.catalog import CollectionInfo, now
    from fintune.retrieval.stores import open_store
    from fintune.retrieval.stores.base import Row

    store = open_store(url)
    name = "bench_v1"
    info = CollectionInfo(
        name, "bench", 1, "minilm", vectors.shape[1], False, "building", now(), 0, ("source", "ticker")
    )
    store.create_collection(info)
    store.catalog.add(info)
    batch = 2048 if kind == "embedded" else 512
    start = time.perf_counter()
    for begin in tqdm(range(0, len(ids), batch), desc=f"{kind} upsert", unit="batch"):
        end = begin + batch
        rows = [
            Row(i, t, v.tolist(), m, "")
            for i, t, v, m in zip(ids[begin:end], texts[begin:end], vectors[begin:end], meta[begin:end], strict=True)
        ]
        store.upsert(name, rows)
    upsert_s = time.perf_counter() - start
    start = time.perf_counter()
    note = store.build_index(name)
    index_s = time.perf_counter() - start
    for q in queries[:20]:  # warm caches
        store.search(name, q.tolist(), 10)
    latencies, recalls = [], []
    for q, truth in zip(queries, exact, strict=True):
        t0 = time.perf_counter()
        hits = store.search(name, q.tolist(), 10)
        latencies.append((time.perf_counter() - t0) * 1000)
        recalls.append(len({h.id for h in hits} & {ids[i] for i in truth}) / 10)
    filtered = []
    for q in queries[:100]:
        t0 = time.perf_counter()
        store.search(name, q.tolist(), 10, filter={"source": "10-K"})
        filtered.append((time.perf_counter() - t0) * 1000)
    store.close()
    return {
        "store": kind,
        "rows": len(ids),
        "upsert_docs_per_s": len(ids) / upsert_s,
        "index_build_s": index_s,
        "index": note,
        "p50_ms": statistics.median(latencies),
        "p95_ms": float(np.percentile(latencies, 95)),
        "filtered_p50_ms": statistics.median(filtered),
        "recall@10": float(np.mean(recalls)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", default="embedded,pgvector")
    parser.add_argument("--limit", type=int, default=110_000, help="passages (10-K first, then transcript windows)")
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()

    from fintune.data.beir import load_beir
    from fintune.data.tasks import get_task
    from fintune.paths import fintune_home
    from fintune.retrieval.embeddings import FinancialEmbeddings

    print(machine_line())
    ids, texts, meta = passages(args.limit)
    cache_dir = fintune_home() / "bench"
    cache_dir.mkdir(parents=True, exist_ok=True)
    vectors, enc_rate = encode(texts, cache_dir / f"vectors-{len(texts)}.npy")
    print(f"{len(ids)} passages ({sum(m['source'] == '10-K' for m in meta)} 10-K, rest ECTSum windows); "
          + (f"encoded at {enc_rate:.0f} docs/s (int8 ONNX)" if enc_rate else "vectors from cache"))  # fmt: skip
    dev = load_beir(get_task("financial_qa_10k").path("dev"), "dev")
    question_texts = list(dev.queries.values())[: args.queries]
    queries = np.asarray(FinancialEmbeddings(str(cache_dir / "minilm-int8")).embed_queries(question_texts), np.float32)
    start = time.perf_counter()
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    exact_ms = (time.perf_counter() - start) * 1000 / len(queries)
    print(f"exact search (numpy brute force over {len(ids)} vectors): {exact_ms:.1f} ms per query")

    results = []
    for kind in args.stores.split(","):
        tmp = Path(tempfile.mkdtemp(prefix=f"fintune-bench-{kind}-"))
        try:
            if kind == "embedded":
                results.append(bench_store(kind, str(tmp / "store"), ids, texts, meta, vectors, queries, exact))
            elif kind == "pgvector":
                sys.path.insert(0, str(Path(__file__).parent.parent))
                from tests import pg_local

                pg_dir = Path(tempfile.mkdtemp(prefix="fintune-bench-pg-"))  # the server's user must enter it
                url = pg_local.start(pg_dir)
                try:
                    results.append(bench_store(kind, url, ids, texts, meta, vectors, queries, exact))
                finally:
                    pg_local.stop(pg_dir)
                    shutil.rmtree(pg_dir, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps(results[-1]))
    print(f"\n{'store':>9} {'rows':>7} {'upsert/s':>9} {'index s':>8} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'filt p50':>8} {'recall@10':>9}")  # fmt: skip
    for r in results:
        print(
            f"{r['store']:>9} {r['rows']:>7} {r['upsert_docs_per_s']:>9.0f} {r['index_build_s']:>8.1f} "
            f"{r['p50_ms']:>7.2f} {r['p95_ms']:>7.2f} {r['filtered_p50_ms']:>8.2f} {r['recall@10']:>9.3f}"
        )
    print(f"peak memory {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
