"""Honest baselines for the regression tasks, reported beside a model's scores by `llm eval`.

Text explains little of a next-day return: a model's MSE means something only next to what the
training mean, and the sign of the day's tweet sentiment, already get.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fintune.data.loading import load_records
from fintune.data.tasks import FinancialTask
from fintune.errors import UsageError
from fintune.metrics.regression import regression_metrics

# A small trader lexicon, written out because the general-purpose ones (VADER) lack the market's words
# (bullish, calls/puts, long/short); the baseline must be transparent, not strong.
_BULLISH_WORDS = (
    "bull bullish buy buying bought long calls call up upside higher high beat beats upgrade upgraded breakout "
    "rally rallies moon strong strength gain gains green rise rises rising surge surges soar soars outperform "
    "growth record profit profits"
)
_BEARISH_WORDS = (
    "bear bearish sell selling sold short shorts shorting puts put down downside lower low miss misses "
    "downgrade downgraded breakdown drop drops weak weakness loss losses red fall falls falling plunge plunges "
    "crash crashes underperform decline declines"
)
BULLISH, BEARISH = frozenset(_BULLISH_WORDS.split()), frozenset(_BEARISH_WORDS.split())
_WORD = re.compile(r"[a-z]+")


def tweet_sentiment(texts: Sequence[str]) -> float:
    """Net lexicon sentiment of a day's tweets in [-1, 1]: (bullish - bearish) / (bullish + bearish) words."""
    words = [w for t in texts for w in _WORD.findall(t.lower())]
    bull = sum(w in BULLISH for w in words)
    bear = sum(w in BEARISH for w in words)
    return (bull - bear) / (bull + bear) if bull + bear else 0.0


def targets(task: FinancialTask, records: Sequence[dict[str, Any]]) -> list[float]:
    if task.target_field is None:
        raise UsageError(f"task '{task.name}' is not a regression task")
    return [float(r[task.target_field]) for r in records]


def regression_baselines(
    task: FinancialTask, train: Sequence[dict[str, Any]], scored: Sequence[dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """Baseline scores on `scored` records, fitted on `train` records.

    train_mean: predict the training mean everywhere (R² about 0, no correlation).
    tweet_sentiment_sign (stocknet): the sign of the day's lexicon sentiment times the mean absolute training
    return (the training mean on days without sentiment words), so MSE and R² are defined as well."""
    fit, golds = np.asarray(targets(task, train)), targets(task, scored)
    mean = float(fit.mean())
    out = {"train_mean": {"value": mean, **regression_metrics([mean] * len(golds), golds)}}
    if task.name == "stocknet":
        sentiment = [tweet_sentiment(r["texts"]) for r in scored]
        size = float(np.abs(fit).mean())
        predictions = [float(np.sign(s)) * size if s else mean for s in sentiment]
        coverage = float(np.mean([s != 0 for s in sentiment]))
        out["tweet_sentiment_sign"] = {"coverage": coverage, **regression_metrics(predictions, golds)}
    return out


def baselines_for(
    task: FinancialTask, scored_path: str | Path | None = None, limit: int | None = None, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Baselines of a regression task on its dev split (or the scored file), on the records `llm eval
    --limit` scores (the same seeded sample), fitted on its train split."""
    from fintune.llm.data import sample_examples

    train = load_records(task.path("train"), task=task).rows
    rows = load_records(scored_path or task.path("dev"), task=task, skip_invalid=True).rows
    scored = sample_examples(rows, limit, seed)
    return regression_baselines(task, train, scored)
