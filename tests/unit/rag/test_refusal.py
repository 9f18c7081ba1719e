"""The withheld share: seeded, exact in size, independent of order; the judged passage really goes."""

from __future__ import annotations

import pytest

from fintune.errors import UsageError
from fintune.rag.refusal import retrieval_depth, shown_passages, withheld
from fintune.retrieval.stores.base import Hit

IDS = [f"q{i}" for i in range(50)]


def test_the_share_is_exact_and_the_choice_deterministic():
    chosen = withheld(IDS, 0.2, seed=0)
    assert len(chosen) == 10 and chosen <= set(IDS)
    assert withheld(list(reversed(IDS)), 0.2, seed=0) == chosen  # order does not matter
    assert withheld(IDS, 0.2, seed=1) != chosen  # the seed does
    assert withheld(IDS, 0.0) == set() and withheld(IDS, 1.0) == set(IDS)


def test_a_bad_share_is_refused():
    with pytest.raises(UsageError, match="refusal share"):
        withheld(IDS, 1.5)


def test_withholding_drops_the_judged_passage_and_keeps_k():
    hits = [Hit(f"d{i}", 1 - i / 10, f"text {i}") for i in range(5)]
    assert retrieval_depth(3, {"d1"}) == 4
    kept = shown_passages(hits[:4], {"d1"}, 3, withhold=True)
    assert [h.id for h in kept] == ["d0", "d2", "d3"]
    assert [h.id for h in shown_passages(hits[:4], {"d1"}, 3, withhold=False)] == ["d0", "d1", "d2"]
