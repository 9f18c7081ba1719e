"""Shared by the benchmark scripts: machine figures measured in the same run as the model figures."""

from __future__ import annotations

import resource
import statistics
import time


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
