"""Classification scoring of generated answers, as FinLoRA scores them."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sklearn.metrics import f1_score

NO_LABEL = ""  # an answer that names none of the labels


def first_label(answer: str, labels: Sequence[str]) -> str:
    """The label that appears first in `answer` (whole word, any case); NO_LABEL if none does."""
    best: tuple[int, int, str] | None = None
    for label in labels:
        match = re.search(rf"(?<![\w-]){re.escape(label)}(?![\w-])", answer, flags=re.IGNORECASE)
        if match:
            # earliest wins; at the same position the longer label ("not positive" over "positive")
            key = (match.start(), -len(label), label)
            best = key if best is None or key < best else best
    return best[2] if best else NO_LABEL


def is_exact(answer: str, label: str) -> bool:
    """Strict: the whole answer is the label (case and a final full stop aside)."""
    return answer.strip().rstrip(".").strip().lower() == label.lower()


def classification_metrics(answers: Sequence[str], golds: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    if len(answers) != len(golds) or not golds:
        raise ValueError(f"need equal, non-empty answers and golds (got {len(answers)} and {len(golds)})")
    predicted = [first_label(a, labels) for a in answers]
    n = len(golds)
    return {
        "accuracy": sum(p == g for p, g in zip(predicted, golds, strict=True)) / n,
        "f1_weighted": float(f1_score(golds, predicted, labels=list(labels), average="weighted", zero_division=0)),
        "accuracy_strict": sum(is_exact(a, g) for a, g in zip(answers, golds, strict=True)) / n,
        "no_label_rate": sum(p == NO_LABEL for p in predicted) / n,
    }
