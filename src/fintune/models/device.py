"""Device and dtype choice: bf16 only where the hardware runs it fast."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch


def cpu_flags_have_bf16() -> bool:
    """The CPU advertises native bf16 matmul (AVX512-BF16 or AMX); without it bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Native bf16 that is also measurably faster than fp32 here: the flag alone once chose bf16 on a CPU
    where it ran at 0.54x fp32 (the measurement is skipped where the flag is missing)."""
    return cpu_flags_have_bf16() and cpu_bf16_matmul_is_faster()


@lru_cache(maxsize=1)
def cpu_bf16_matmul_is_faster(n: int = 512, repeat: int = 8) -> bool:
    """Measured, once per process: a bf16 matmul beats fp32 on this CPU. The flag is not enough: a 2-core
    Xeon with AVX512-BF16 ran bf16 matmuls at 0.54x the fp32 rate (benchmarks/common.py machine_line)."""
    import time

    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds: dict[torch.dtype, float] = {}
    for dtype in (torch.float32, torch.bfloat16, torch.float32, torch.bfloat16):  # interleaved, best of two
        x, y = a.to(dtype), b.to(dtype)
        x @ y
        start = time.perf_counter()
        for _ in range(repeat):
            x @ y
        seconds[dtype] = min(seconds.get(dtype, float("inf")), time.perf_counter() - start)
    return seconds[torch.bfloat16] < seconds[torch.float32]


def pick_device(use_gpu: bool | None = None) -> str:
    if use_gpu is False:
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if use_gpu:
        raise RuntimeError("a GPU was requested but torch sees no CUDA device")
    return "cpu"


def pick_dtype(device: str) -> torch.dtype:
    """bf16 where it is fast (CUDA with bf16 support, CPUs with native bf16 that beats fp32), else fp32."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
