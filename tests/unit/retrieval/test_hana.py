"""SAP HANA Cloud wiring that can be checked without a HANA server: connection settings and HanaDB options."""

from __future__ import annotations

import pytest

from fintune.retrieval.catalog import StoreError
from fintune.retrieval.stores import hana
from fintune.retrieval.stores.hana import HanaStore, hana_configured, hana_connection

ENV = {"HANA_HOST": "abc.hana.prod.example", "HANA_USER": "DBADMIN", "HANA_PASSWORD": "s3cret", "HANA_PORT": "30015"}


def test_connection_from_environment_variables():
    settings = hana_connection("hana", ENV)
    assert (settings.host, settings.port, settings.user, settings.schema) == (
        "abc.hana.prod.example",
        30015,
        "DBADMIN",
        None,
    )
    kwargs = settings.connect_kwargs()
    assert kwargs["encrypt"] is True and kwargs["autocommit"] is False and kwargs["password"] == "s3cret"
    assert hana_configured(ENV) and not hana_configured({"HANA_HOST": "x"})


def test_connection_from_a_url_beats_the_environment():
    settings = hana_connection("hana://APP:p%40ss@db.example:443/?schema=FIN", ENV)
    assert (settings.host, settings.port, settings.user, settings.password, settings.schema) == (
        "db.example", 443, "APP", "p@ss", "FIN",
    )  # fmt: skip


def test_missing_settings_are_named():
    with pytest.raises(StoreError, match="set HANA_HOST, HANA_PASSWORD"):
        hana_connection("hana", {"HANA_USER": "u"})


class RecordingCursor:
    def __init__(self, log: list):
        self.log, self.description = log, None

    def execute(self, sql, params=()):
        self.log.append((sql, params))
        self.description = [("c",)] if sql.lstrip().upper().startswith("SELECT") else None

    def fetchall(self):
        return [(0,)] if "COUNT(*)" in self.log[-1][0] else []  # no tables, no rows

    def close(self):
        pass


class RecordingConnection:
    """Answers 'no such table' to existence checks and records every statement."""

    def __init__(self):
        self.log: list = []
        self.commits = 0

    def cursor(self):
        return RecordingCursor(self.log)

    def commit(self):
        self.commits += 1

    def rollback(self):
        pass

    def close(self):
        pass


def test_store_creates_catalog_tables_and_hana_db_gets_real_vector_and_cosine(monkeypatch):
    made = {}

    class FakeHanaDB:
        def __init__(self, **kwargs):
            made.update(kwargs)

    monkeypatch.setattr("langchain_hana.HanaDB", FakeHanaDB)
    conn = RecordingConnection()
    store = HanaStore("hana://APP:pw@db.example:443/?schema=FIN", connection=conn)
    statements = [sql for sql, _ in conn.log]
    assert statements[0] == 'SET SCHEMA "FIN"'
    assert any(s.startswith("CREATE TABLE fintune_collections") and "NVARCHAR" in s for s in statements)
    assert store.display == "hana://APP@db.example:443/?schema=FIN"  # no password
    store._make("tenk_v1", None)
    from langchain_hana.utils import DistanceStrategy

    assert made["vector_column_type"] == "REAL_VECTOR" and made["distance_strategy"] == DistanceStrategy.COSINE
    assert made["table_name"] == "tenk_v1" and made["specific_metadata_columns"] == [hana.ID_COLUMN, hana.HASH_COLUMN]


def test_hash_lookup_is_parameterised(monkeypatch):
    conn = RecordingConnection()
    store = HanaStore("hana://APP:pw@db.example:443", connection=conn)
    store.hashes("tenk_v1", ["d1", "x'); DROP TABLE t; --"])
    sql, params = conn.log[-1]
    assert "IN (?, ?)" in sql and params == ("d1", "x'); DROP TABLE t; --")
    with pytest.raises(StoreError, match="not an identifier"):
        store.count('t"; DROP TABLE x; --')
