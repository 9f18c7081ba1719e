"""Shared by the benchmark scripts: machine figures measured in the same run as the model figures."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def matmul_gflops(dtype_name: str, n: int = 1024, repeat: int = 10) -> float:
    """Measured square-matmul throughput: the machine's practical ceiling for the model FLOP utilisation."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * n**3 * repeat / (time.perf_counter() - start) / 1e9


def machine_line() -> str:
    import torch

    fp32, bf16 = matmul_gflops("float32"), matmul_gflops("bfloat16")
    return (
        f"machine: {torch.get_num_threads()} threads, matmul fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s "
        f"(bf16/fp32 {bf16 / fp32:.2f}x)"
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(values: list[float]) -> float:
    return statistics.median(values)


def train_plain_minilm(dataset, batch_size: int, max_steps: int | None, output_dir: str) -> tuple:
    """sentence-transformers' Trainer with its defaults (MNRL, one epoch) on MiniLM: the plain baseline.

    Returns the trained model, the training seconds and the steps taken."""
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers import SentenceTransformerTrainingArguments as Args
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from fintune.models.resolve import resolve_model

    model = SentenceTransformer(str(resolve_model("minilm")), device="cpu")
    args = Args(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        num_train_epochs=1,
        max_steps=max_steps or -1,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1000,
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=MultipleNegativesRankingLoss(model)
    )
    start = time.perf_counter()
    trainer.train()
    return model, time.perf_counter() - start, trainer.state.global_step


def llm_eval(
    adapter: str | Path | None, task: str, out: Path, limit: int | None = None, data: str | None = None
) -> dict[str, Any]:
    """`fintune llm eval` in its own process (the CLI's figures exactly); its JSON report. None: base SmolLM2."""
    target = ["--adapter", str(adapter)] if adapter else ["--model", "smollm2"]
    extra = [*(["--data", data] if data else []), *(["--limit", str(limit)] if limit else [])]
    command = [sys.executable, "-m", "fintune", "llm", "eval", *target, "--task", task, *extra, "--output", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())
