"""Numeric answers: the first number in the answer, right within a relative or absolute tolerance."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?%?|-?\$?\.\d+%?")


def first_number(text: str) -> float | None:
    """The first number written in `text` ("$1,234.50" -> 1234.5, "-3%" -> -3.0); None if there is none."""
    match = _NUMBER.search(text)
    if not match:
        return None
    cleaned = match.group().replace("$", "").replace(",", "").rstrip("%")
    try:
        return float(cleaned)
    except ValueError:
        return None


def numeric_metrics(
    answers: Sequence[str], references: Sequence[str], rel_tol: float = 0.01, abs_tol: float = 0.01
) -> dict[str, float]:
    """`accuracy`: answers within max(rel_tol * |reference|, abs_tol); `parsed_rate`: answers with a number."""
    if len(answers) != len(references) or not references:
        raise ValueError(f"need equal, non-empty answers and references ({len(answers)}, {len(references)})")
    hits = parsed = 0
    for answer, reference in zip(answers, references, strict=True):
        value, target = first_number(answer), first_number(reference)
        if target is None:
            raise ValueError(f"reference {reference!r} holds no number")
        if value is None:
            continue
        parsed += 1
        hits += math.isclose(value, target, rel_tol=rel_tol, abs_tol=abs_tol)
    n = len(references)
    return {"accuracy": hits / n, "parsed_rate": parsed / n}
