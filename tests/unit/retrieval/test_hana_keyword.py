"""HANA keyword search without a server: the statement, its parameters and the filter, as sent to the driver."""

from __future__ import annotations

import json
from types import SimpleNamespace

from fintune.retrieval.stores import hana
from fintune.retrieval.stores.hana import HanaStore, hana_search_terms
from tests.unit.retrieval.test_hana import RecordingConnection, RecordingCursor

ROW = ("The board declared a dividend", json.dumps({"ticker": "AAPL", hana.ID_COLUMN: "d7"}), "d7", 3.5)


class KeywordCursor(RecordingCursor):
    def fetchall(self):
        sql, _ = self.log[-1]
        return [ROW] if "KEYWORD_SCORE" in sql else super().fetchall()


class KeywordConnection(RecordingConnection):
    def cursor(self):
        return KeywordCursor(self.log)


def test_search_terms_are_or_ed_words_without_search_syntax():
    assert hana_search_terms('What "dividend" did AAPL* pay -- OR 2023?') == (
        '"what" OR "dividend" OR "did" OR "aapl" OR "pay" OR "or" OR "2023"'
    )
    assert hana_search_terms("?! --") == ""


def test_keyword_search_is_parameterised_filtered_and_scored_by_hana():
    conn = KeywordConnection()
    store = HanaStore("hana://APP:pw@db.example:443", connection=conn)
    store._hana_db = lambda name, embeddings=None: SimpleNamespace(
        specific_metadata_columns=[hana.ID_COLUMN, hana.HASH_COLUMN], metadata_column="VEC_META"
    )  # the two attributes langchain-hana's filter translator reads
    hits = store.keyword_search("tenk_v1", "dividend'); DROP TABLE x; --", 5, {"ticker": "AAPL"})
    sql, params = conn.log[-1]
    assert sql.startswith('SELECT TOP 5 "VEC_TEXT"') and 'FROM "tenk_v1"' in sql
    assert "WHERE JSON_VALUE(VEC_META, '$.ticker') = TO_NVARCHAR(?) AND SCORE" in sql and "DROP" not in sql
    assert sql.count("SCORE(? IN (\"VEC_TEXT\" EXACT SEARCH MODE 'text'))") == 2
    assert params == ('"dividend" OR "drop" OR "table" OR "x"', "AAPL", '"dividend" OR "drop" OR "table" OR "x"')
    assert [(h.id, h.score, h.metadata) for h in hits] == [("d7", 3.5, {"ticker": "AAPL"})]
    assert store.keyword_search("tenk_v1", "?!", 5, None) == []  # nothing to search for: no statement sent
