"""LoRA aggregation over {parameter name: array}: pure functions, no Flower, no torch.

A LoRA update is ΔW = B·A. Averaging A and B separately (FedAvg, what FlowerTune and FinLoRA do) gives
mean(B)·mean(A), which is not mean(B·A): the gap is logged. FFA-LoRA keeps A frozen at one shared seeded
initialisation, so mean(B_i)·A = mean(B_i·A) exactly and only B travels. FedSA-LoRA shares only A; each
client keeps its own B (a personalised adapter). Flower's own aggregate_arrayrecords averages every array
it gets; these functions exist because LoRA needs to know which half of a module a name is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Arrays = dict[str, np.ndarray]
Aggregation = Literal["fedavg", "ffa", "fedsa"]
AGGREGATIONS: tuple[Aggregation, ...] = ("fedavg", "ffa", "fedsa")
A_PART, B_PART = ".lora_A.", ".lora_B."


def is_lora_a(name: str) -> bool:
    return A_PART in name


def is_lora_b(name: str) -> bool:
    return B_PART in name


def module_of(name: str) -> str:
    """The adapted module a LoRA array belongs to ('...q_proj.lora_A.weight' -> '...q_proj')."""
    for part in (A_PART, B_PART):
        if part in name:
            return name.split(part, 1)[0]
    raise ValueError(f"'{name}' is neither a lora_A nor a lora_B array")


def shared_names(names: Sequence[str], aggregation: Aggregation) -> list[str]:
    """The arrays a client sends under `aggregation`: all (fedavg), only B (ffa), only A (fedsa)."""
    if aggregation == "ffa":
        return [n for n in names if is_lora_b(n)]
    if aggregation == "fedsa":
        return [n for n in names if is_lora_a(n)]
    return list(names)


def _weights(weights: Sequence[float], count: int) -> np.ndarray:
    if count == 0:
        raise ValueError("nothing to aggregate: no client updates")
    if len(weights) != count:
        raise ValueError(f"{count} updates but {len(weights)} weights")
    w = np.asarray(weights, dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    return w / w.sum()


def weighted_mean(updates: Sequence[Arrays], weights: Sequence[float]) -> Arrays:
    """Example-weighted mean of each named array; every update must hold the same names and shapes."""
    w = _weights(weights, len(updates))
    names = set(updates[0])
    for i, update in enumerate(updates[1:], start=1):
        if set(update) != names:
            diff = sorted(names.symmetric_difference(update))[:3]
            raise ValueError(f"update {i} holds other arrays than update 0 (e.g. {', '.join(diff)})")
    out: Arrays = {}
    for name in updates[0]:
        stacked = np.stack([np.asarray(u[name], dtype=np.float64) for u in updates])
        out[name] = np.tensordot(w, stacked, axes=1).astype(updates[0][name].dtype)
    return out


def product_error(updates: Sequence[Arrays], weights: Sequence[float]) -> dict[str, float]:
    """Per module, ‖Σ wᵢ BᵢAᵢ − (Σ wᵢ Bᵢ)(Σ wᵢ Aᵢ)‖_F: how far separate averaging is from averaging ΔW."""
    w = _weights(weights, len(updates))
    errors = {}
    for a_name in (n for n in updates[0] if is_lora_a(n)):
        b_name = a_name.replace(A_PART, B_PART)
        if b_name not in updates[0]:
            continue
        a = [np.asarray(u[a_name], dtype=np.float64) for u in updates]
        b = [np.asarray(u[b_name], dtype=np.float64) for u in updates]
        mean_product = sum(wi * (bi @ ai) for wi, ai, bi in zip(w, a, b, strict=True))
        product_of_means = sum(wi * bi for wi, bi in zip(w, b, strict=True)) @ sum(
            wi * ai for wi, ai in zip(w, a, strict=True)
        )
        errors[module_of(a_name)] = float(np.linalg.norm(mean_product - product_of_means))
    return errors


def _only(updates: Sequence[Arrays], keep: str, aggregation: str) -> None:
    for i, update in enumerate(updates):
        wrong = [n for n in update if keep not in n]
        if wrong:
            raise ValueError(f"{aggregation}: update {i} holds '{wrong[0]}'; clients send only {keep.strip('.')}")


def fedavg(updates: Sequence[Arrays], weights: Sequence[float]) -> tuple[Arrays, dict[str, float]]:
    """A and B averaged separately, example-weighted; plus the per-module error against mean(B·A)."""
    return weighted_mean(updates, weights), product_error(updates, weights)


def ffa(updates: Sequence[Arrays], weights: Sequence[float]) -> Arrays:
    """FFA-LoRA: the updates hold only B (A is frozen and shared), so the mean of ΔW is exact."""
    _only(updates, B_PART, "ffa")
    return weighted_mean(updates, weights)


def fedsa(updates: Sequence[Arrays], weights: Sequence[float]) -> Arrays:
    """FedSA-LoRA: the updates hold only A; each client's B never leaves it."""
    _only(updates, A_PART, "fedsa")
    return weighted_mean(updates, weights)


def aggregate(
    aggregation: Aggregation, updates: Sequence[Arrays], weights: Sequence[float]
) -> tuple[Arrays, dict[str, float]]:
    """The shared arrays' new global value under `aggregation`, and fedavg's product error (else empty)."""
    if aggregation == "fedavg":
        return fedavg(updates, weights)
    if aggregation == "ffa":
        return ffa(updates, weights), {}
    if aggregation == "fedsa":
        return fedsa(updates, weights), {}
    raise ValueError(f"unknown aggregation '{aggregation}'; choose one of {', '.join(AGGREGATIONS)}")
