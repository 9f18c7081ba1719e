"""Keyword search and hybrid search in the embedded store and a real PostgreSQL, on a corpus built by hand.

Vectors are 2-d and chosen, so the vector ranking is known; the keyword ranking follows from which passages
hold the query's words ('quarterly' and 'dividend': d holds both, c one, the others none). The fused ranking
is then computed by hand from RRF's formula.
"""

from __future__ import annotations

import pytest

from fintune.retrieval.corpus import CorpusDoc
from fintune.retrieval.hybrid import HybridSettings
from fintune.retrieval.index import target_version
from fintune.retrieval.search import Searcher
from fintune.retrieval.stores import open_store
from fintune.retrieval.stores.base import Row

pytestmark = pytest.mark.slow  # starts a real PostgreSQL, as the other store tests

QUERY = "quarterly dividends"  # stemming must match 'dividend'
QUERY_VECTOR = [1.0, 0.0]
DOCS = {  # id: (text, vector, sector); cosine to the query falls from a to e
    "a": ("Revenue grew on strong iPhone sales", [1.0, 0.05], "tech"),
    "b": ("Services revenue reached a record high", [0.9, 0.3], "tech"),
    "c": ("The dividend policy is reviewed each year", [0.5, 0.8], "tech"),
    "d": ("The board declared a quarterly dividend of 24 cents per share", [0.1, 1.0], "banks"),
    "e": ("Employees work in offices worldwide", [-1.0, 0.2], "tech"),
}


class HandEmbeddings:
    """The query's vector is given: the test knows every cosine."""

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        return [QUERY_VECTOR for _ in texts]


@pytest.fixture(params=["embedded", "pgvector"])
def searcher(request, tmp_path):
    url = str(tmp_path / "store") if request.param == "embedded" else request.getfixturevalue("pg_database")
    store = open_store(url)
    info = target_version(store, "tiny", "hand", 2, False, ["sector"], False)
    rows = []
    for doc_id, (text, vector, sector) in DOCS.items():
        meta = {"sector": sector}
        rows.append(Row(doc_id, text, vector, meta, CorpusDoc(doc_id, text, meta).content_hash))
    store.upsert(info.name, rows)
    assert "full-text index" in store.build_index(info.name)
    yield Searcher(store, info, HandEmbeddings())
    store.close()


def test_keyword_search_ranks_by_the_query_words_and_filters(searcher):
    hits = searcher.store.keyword_search(searcher.info.name, QUERY, 10, None)
    assert [h.id for h in hits] == ["d", "c"]  # both words, then one; no passage without them
    assert hits[0].score > hits[1].score > 0 and hits[0].metadata == {"sector": "banks"}
    filtered = searcher.store.keyword_search(searcher.info.name, QUERY, 10, {"sector": "tech"})
    assert [h.id for h in filtered] == ["c"]
    assert searcher.store.keyword_search(searcher.info.name, "the of", 10, None) == []  # stop words only
    # the query's own syntax is not interpreted: quotes and operators are text (and never SQL)
    odd = searcher.store.keyword_search(searcher.info.name, "dividend' OR 1=1; --", 10, None)
    assert {h.id for h in odd} == {"c", "d"}


def test_hybrid_fuses_the_two_rankings_by_hand_computed_rrf(searcher):
    assert [h.id for h in searcher.search([QUERY], k=5)[0]] == ["a", "b", "c", "d", "e"]  # vector only
    hits = searcher.search([QUERY], k=5, hybrid=HybridSettings())[0]
    # vector ranks a1 b2 c3 d4 e5, keyword ranks d1 c2: d = 1/64 + 1/61, c = 1/63 + 1/62, a = 1/61, b = 1/62
    assert [h.id for h in hits] == ["d", "c", "a", "b", "e"]
    assert [h.score for h in hits] == pytest.approx([1 / 64 + 1 / 61, 1 / 63 + 1 / 62, 1 / 61, 1 / 62, 1 / 65])
    by_id = {h.id: h for h in hits}
    assert by_id["a"].vector_score == pytest.approx(1 / (1 + 0.05**2) ** 0.5, abs=1e-5)
    assert by_id["a"].keyword_score is None and by_id["d"].keyword_score > by_id["c"].keyword_score > 0
    keyword_only = searcher.search([QUERY], k=5, hybrid=HybridSettings(vector_weight=0))[0]
    assert [h.id for h in keyword_only] == ["d", "c"] and keyword_only[0].vector_score is None


def test_hybrid_applies_the_filter_to_both_sides(searcher):
    hits = searcher.search([QUERY], k=5, filter={"sector": "tech"}, hybrid=HybridSettings(keyword_weight=2))[0]
    # without d: vector a1 b2 c3 e4, keyword c1: c = 1/63 + 2/61, a = 1/61, b = 1/62, e = 1/64
    assert [h.id for h in hits] == ["c", "a", "b", "e"]
    assert hits[0].score == pytest.approx(1 / 63 + 2 / 61)
