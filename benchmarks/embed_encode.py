"""Embedding inference speed: PyTorch fp32 (sentence-transformers) vs fintune's ONNX exports, side by side.

Encodes every passage of the shared 10-K QA dev corpus with each model, in interleaved rounds, and
scores NDCG@10 on the dev queries with each, so speed and quality retention come from the same run.

    .venv/bin/python benchmarks/embed_encode.py [--rounds 3] [--docs 5313] [--model minilm]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line, median, peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--docs", type=int, help="encode only the first N passages (default: all)")
    args = parser.parse_args()

    import torch

    from fintune.data.beir import load_beir
    from fintune.data.tasks import get_task
    from fintune.embed.evaluate import evaluate_retrieval
    from fintune.embed.export import export_onnx
    from fintune.embed.model import load_embedder

    print(machine_line())
    data = load_beir(get_task("financial_qa_10k").path("dev"), "dev")
    texts = [data.doc_text(d) for d in data.corpus][: args.docs]
    tmp = Path(tempfile.mkdtemp(prefix="fintune-bench-encode-"))
    models = {"pytorch fp32": load_embedder(args.model, device="cpu")}
    for quantize in (None, "int8"):
        result = export_onnx(args.model, tmp / f"onnx-{quantize or 'fp32'}", quantize=quantize)
        models[f"onnx {quantize or 'fp32'}"] = load_embedder(str(result.output))
        print(f"exported onnx {quantize or 'fp32'}: {result.size_mb:.0f} MB in {result.seconds:.0f} s")

    rates: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.encode_document(texts, batch_size=64, normalize_embeddings=True)
            rate = len(texts) / (time.perf_counter() - start)
            rates[name].append(rate)
            print(f"round {round_ + 1} {name:>13}: {rate:.1f} docs/s", flush=True)

    ndcg = {name: evaluate_retrieval(model, data).metrics["ndcg@10"] for name, model in models.items()}
    base_rate, base_ndcg = median(rates["pytorch fp32"]), ndcg["pytorch fp32"]
    print(f"\n{len(texts)} passages, {args.rounds} rounds; NDCG@10 on {len(data.queries)} dev queries (full corpus)")
    print(f"{'model':>13}  {'docs/s':>8}  {'speed-up':>8}  {'NDCG@10':>8}  {'retained':>8}")
    for name in models:
        rate = median(rates[name])
        print(f"{name:>13}  {rate:8.1f}  {rate / base_rate:7.2f}x  {ndcg[name]:8.4f}  {ndcg[name] / base_ndcg:8.2%}")
    print(f"peak memory {peak_rss_mb():.0f} MB; torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
