"""The CPU dtype choice: bf16 only where the CPU has it natively and it measures faster than fp32."""

from __future__ import annotations

import pytest
import torch

from fintune.models import device


@pytest.fixture
def cpu(monkeypatch):
    """Set the CPU's bf16 flag and the measured speed; count the measurements."""
    measured: list[bool] = []

    def set_cpu(flag: bool, faster: bool) -> list[bool]:
        monkeypatch.setattr(device, "cpu_flags_have_bf16", lambda: flag)
        monkeypatch.setattr(device, "cpu_bf16_matmul_is_faster", lambda: measured.append(faster) or faster)
        monkeypatch.setattr(device, "cpu_has_fast_bf16", device.cpu_has_fast_bf16.__wrapped__)  # uncached
        return measured

    return set_cpu


@pytest.mark.parametrize(
    ("flag", "faster", "dtype", "measurements"),
    [
        (True, True, torch.bfloat16, 1),  # AMX: bf16 ~4x fp32
        (True, False, torch.float32, 1),  # AVX512-BF16 that ran at 0.54x fp32: the flag alone chose bf16 here
        (False, True, torch.float32, 0),  # no native bf16: emulated, not even measured
    ],
)
def test_a_cpu_trains_in_bf16_only_with_the_flag_and_a_faster_measurement(cpu, flag, faster, dtype, measurements):
    measured = cpu(flag, faster)
    assert device.pick_dtype("cpu") is dtype
    assert len(measured) == measurements


def test_the_measurement_compares_real_matmuls_and_is_cached():
    device.cpu_bf16_matmul_is_faster.cache_clear()
    first = device.cpu_bf16_matmul_is_faster(n=64, repeat=2)
    assert isinstance(first, bool)
    assert device.cpu_bf16_matmul_is_faster.cache_info().misses == 1
    assert device.cpu_bf16_matmul_is_faster(n=64, repeat=2) is first
    assert device.cpu_bf16_matmul_is_faster.cache_info().hits == 1
