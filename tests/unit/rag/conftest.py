"""A handmade BEIR folder (six passages, five questions) and a searcher stub with a fixed ranking."""

from __future__ import annotations

from pathlib import Path

import pytest

from fintune.retrieval.stores.base import Hit
from tests.conftest import write_beir

PASSAGES = {f"d{i}": f"Company{i} reported revenue of {i + 1} billion dollars in 2023." for i in range(6)}
# q0..q3 are answered by d0..d3; q4 has no answer text; d4 and d5 are only ever distractors
QUESTIONS = {f"q{i}": f"What revenue did Company{i} report in 2023?" for i in range(5)}


@pytest.fixture
def beir(tmp_path) -> Path:
    queries = [
        {"_id": q, "text": t, "answer": f"Company{i} reported {i + 1} billion dollars." if i < 4 else ""}
        for i, (q, t) in enumerate(QUESTIONS.items())
    ]
    return write_beir(tmp_path, PASSAGES, queries, "train", {f"q{i}": f"d{i}" for i in range(5)})


class FixedSearcher:
    """Ranks d0, d1, ... for every query: q0, q1 find their passage in the top 2, q2 and q3 do not."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def search(self, queries: list[str], k: int = 10, *args: object, **kwargs: object) -> list[list[Hit]]:
        self.calls.append((len(queries), k))
        ranked = [Hit(d, 0.9 - 0.1 * i, t) for i, (d, t) in enumerate(PASSAGES.items())]
        return [ranked[:k] for _ in queries]


@pytest.fixture
def searcher() -> FixedSearcher:
    return FixedSearcher()
