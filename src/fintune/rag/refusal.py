"""The unanswerable share of a RAG evaluation or training set: questions whose judged passage is withheld.

Which questions lose their passage is fixed by a seeded hash of their ids, so a rerun, a reordered file
or another answerer sees exactly the same split. Retrieval asks for k plus the number of judged passages,
drops the judged ones and keeps k, so a withheld question still gets k real (distracting) passages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from fintune.errors import UsageError

if TYPE_CHECKING:  # the CLI reads this module's defaults at start-up: keep it light
    from fintune.retrieval.stores.base import Hit

REFUSAL_SHARE = 0.2  # share of questions whose judged passage is removed: the right reply is NOT_FOUND
SEED = 0


def _rank(qid: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}:{qid}".encode()).digest()


def withheld(qids: Iterable[str], share: float = REFUSAL_SHARE, seed: int = SEED) -> set[str]:
    """round(share x n) of the ids, chosen by a seeded hash: independent of their order."""
    if not 0 <= share <= 1:
        raise UsageError(f"refusal share must lie in [0, 1], not {share}")
    unique = sorted(set(qids))
    count = round(share * len(unique))
    return set(sorted(unique, key=lambda q: _rank(q, seed))[:count])


def retrieval_depth(k: int, judged: Collection[str]) -> int:
    """How many hits to retrieve so that k remain after dropping the judged passages."""
    return k + len(judged)


def shown_passages(hits: list[Hit], judged: Collection[str], k: int, withhold: bool) -> list[Hit]:
    """The k passages an answerer sees: the top k, or the top k that are not judged."""
    if not withhold:
        return hits[:k]
    return [h for h in hits if h.id not in judged][:k]
