"""Extraction and QA scoring: exact match and token F1 after SQuAD-style normalisation."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", flags=re.IGNORECASE)
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces (SQuAD's normalisation)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def qa_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    if len(predictions) != len(references) or not references:
        raise ValueError(f"need equal, non-empty predictions and references ({len(predictions)}, {len(references)})")
    n = len(references)
    return {
        "exact_match": sum(
            normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references, strict=True)
        )
        / n,
        "token_f1": sum(token_f1(p, r) for p, r in zip(predictions, references, strict=True)) / n,
    }
