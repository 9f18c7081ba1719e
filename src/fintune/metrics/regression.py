"""Regression scores for numeric targets: mean squared error and R²."""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.metrics import mean_squared_error, r2_score


def regression_metrics(predictions: Sequence[float], targets: Sequence[float]) -> dict[str, float]:
    if len(predictions) != len(targets) or len(targets) < 2:
        raise ValueError(f"need equal predictions and targets, at least two ({len(predictions)}, {len(targets)})")
    return {"mse": float(mean_squared_error(targets, predictions)), "r2": float(r2_score(targets, predictions))}
