"""Embedding training speed: plain sentence-transformers defaults vs fintune's recipe, side by side.

Both train all-MiniLM-L6-v2 with MNRL on the same (query, passage) pairs of the shared 10-K QA train
split, batch 32, for the same number of steps. The fintune side is the library's own recipe
(`prepare_training` + `run_training`, what `fintune embed train` runs) with one change, the fixed
number of steps, and without hard negatives, so both sides train on the same pairs; its examples and
seconds are the recipe's clock (examples that reached a training step; the final checkpoint write
included). Each run is a fresh process (fintune's allocator setting is process-wide), alternating
plain/fintune, and the medians are compared.

    .venv/bin/python benchmarks/embed_train.py [--steps 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine_line, peak_rss_mb, train_plain_minilm

VARIANTS = ("plain", "fintune")
BATCH = 32


def run_variant(variant: str, steps: int) -> dict:
    """One timed training run in this process (called in a subprocess by main)."""
    import torch

    from fintune.data.tasks import get_task

    torch.manual_seed(0)
    data = get_task("financial_qa_10k").path("train")
    model, dataset, examples, seconds = (_fintune if variant == "fintune" else _plain)(data, steps)
    sample = dataset.select(range(min(len(dataset), steps * BATCH)))
    texts = [t for column in ("anchor", "positive") for t in sample[column]]
    lengths = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
    encoder = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    return {
        "tokens_per_pair": sum(len(x) for x in lengths) / len(sample),
        "encoder_params": encoder,
        "variant": variant,
        "steps": steps,
        "examples": examples,
        "seconds": seconds,
        "pairs_per_s": examples / seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def _fintune(data: Path, steps: int) -> tuple:
    """The recipe as `fintune embed train` runs it (the CLI sets the allocator at start-up, as here)."""
    from fintune.config.schema import EmbedRunConfig
    from fintune.embed.train import prepare_training, run_training
    from fintune.perf import keep_freed_memory

    keep_freed_memory()
    config = EmbedRunConfig(model="minilm", data=str(data), batch_size=BATCH, hard_negatives=0)
    with tempfile.TemporaryDirectory(prefix="fintune-bench-embed-") as tmp:
        setup = prepare_training(config, Path(tmp) / "model", use_gpu=False, evaluate=False)
        setup.trainer.args.max_steps = steps  # the one change to the recipe
        result = run_training(setup, resume=False)
    return setup.model, setup.data.dataset, result.examples, result.train_seconds


def _plain(data: Path, steps: int) -> tuple:
    """sentence-transformers' Trainer with its defaults on the same pairs."""
    from fintune.embed.examples import load_training_data

    dataset = load_training_data(data).dataset
    model, seconds, _ = train_plain_minilm(dataset, BATCH, steps, "/tmp/fintune-bench-embed")
    return model, dataset, steps * BATCH, seconds  # every batch is full: steps * 32 < the split's pairs


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
