"""Regression scores for numeric targets: MSE, R², Pearson correlation and directional accuracy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import pearsonr
from sklearn.metrics import mean_squared_error, r2_score


def regression_metrics(predictions: Sequence[float], targets: Sequence[float]) -> dict[str, float]:
    """`directional_accuracy`: the share of predictions with the target's sign (zero counts as its own sign).

    `pearson` is left out when either side is constant (a constant baseline has no correlation)."""
    if len(predictions) != len(targets) or len(targets) < 2:
        raise ValueError(f"need equal predictions and targets, at least two ({len(predictions)}, {len(targets)})")
    pred, gold = np.asarray(predictions, dtype=float), np.asarray(targets, dtype=float)
    metrics = {
        "mse": float(mean_squared_error(gold, pred)),
        "r2": float(r2_score(gold, pred)),
        "directional_accuracy": float(np.mean(np.sign(pred) == np.sign(gold))),
    }
    if np.ptp(pred) > 0 and np.ptp(gold) > 0:
        metrics["pearson"] = float(pearsonr(pred, gold).statistic)
    return metrics
