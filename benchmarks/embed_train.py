"""Embedding training speed: plain sentence-transformers defaults vs fintune's recipe, side by side.

Both train all-MiniLM-L6-v2 with MNRL on the same (query, passage) pairs of the shared 10-K QA train
split, batch 32, for the same number of steps; each run is a fresh process (fintune's allocator
setting is process-wide), alternating plain/fintune, and the medians are compared.

    .venv/bin/python benchmarks/embed_train.py [--steps 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line, peak_rss_mb

VARIANTS = ("plain", "fintune")


def run_variant(variant: str, steps: int) -> dict:
    """One timed training run in this process (called in a subprocess by main)."""
    if variant == "fintune":
        from fintune.perf import keep_freed_memory

        keep_freed_memory()
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from fintune.data.beir import load_beir
    from fintune.data.tasks import get_task
    from fintune.embed.freezing import freeze_layers
    from fintune.embed.sampler import LengthBucketBatchSampler
    from fintune.models.resolve import resolve_model

    torch.manual_seed(0)
    data = load_beir(get_task("financial_qa_10k").path("train"), "train")
    pairs = [(data.queries[q], data.doc_text(d)) for q, rel in data.qrels.items() for d in rel]
    dataset = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    model = SentenceTransformer(str(resolve_model("minilm")), device="cpu")
    extra = {}
    if variant == "fintune":
        freeze_layers(model, 2)
        extra["batch_sampler"] = LengthBucketBatchSampler
    args = Args(
        output_dir="/tmp/fintune-bench-embed",
        per_device_train_batch_size=32,
        max_steps=steps,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1000,
        disable_tqdm=True,
        **extra,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=MultipleNegativesRankingLoss(model)
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    tokenizer = model.tokenizer
    sample = pairs[: steps * 32]
    lengths = tokenizer([t for pair in sample for t in pair], truncation=True, max_length=model.max_seq_length)
    tokens_per_pair = sum(len(x) for x in lengths["input_ids"]) / len(sample)
    encoder = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    return {
        "tokens_per_pair": tokens_per_pair,
        "encoder_params": encoder,
        "variant": variant,
        "steps": steps,
        "seconds": seconds,
        "pairs_per_s": steps * 32 / seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.steps)))
        return
    print(machine_line())
    from common import matmul_gflops

    peak = matmul_gflops("float32") * 1e9
    results: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_ in range(args.rounds):
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--variant", variant, "--steps", str(args.steps)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            results[variant].append(row["pairs_per_s"])
            # 6 FLOPs per encoder parameter and token (forward + backward; embeddings are lookups): an estimate
            # that over-counts fintune, whose frozen lower layers skip most of their backward
            mfu = 6 * row["encoder_params"] * row["tokens_per_pair"] * row["pairs_per_s"] / peak
            print(
                f"round {round_ + 1} {variant:>8}: {row['pairs_per_s']:.1f} pairs/s ({row['seconds']:.0f} s, "
                f"MFU {mfu:.1%} of the fp32 matmul peak, peak {row['peak_rss_mb']:.0f} MB)"
            )
    plain, fast = statistics.median(results["plain"]), statistics.median(results["fintune"])
    print(f"median pairs/s: plain sentence-transformers {plain:.1f}, fintune {fast:.1f}, ratio {fast / plain:.2f}x")


if __name__ == "__main__":
    main()
