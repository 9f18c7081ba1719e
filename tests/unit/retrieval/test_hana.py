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
        sql, params = self.log[-1]
        if "FOR UPDATE" in sql:
            return [params]  # the lock row
        return [(0,)] if "COUNT(*)" in sql else []  # no tables, no rows

    def close(self):
        pass


class RecordingConnection:
    """Answers 'no such table' to existence checks and records every statement."""

    def __init__(self):
        self.log: list = []
        self.commits = self.rollbacks = 0

    def cursor(self):
        return RecordingCursor(self.log)

    def commit(self):
        self.commits += 1

    def rollback(self):
        self.rollbacks += 1

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


class BusyCursor(RecordingCursor):
    """Another process holds every lock row: FOR UPDATE NOWAIT fails as HANA's lock conflict does."""

    def execute(self, sql, params=()):
        super().execute(sql, params)
        if "NOWAIT" in sql:
            from hdbcli import dbapi

            raise dbapi.Error("transaction rolled back by lock wait timeout")


class BusyConnection(RecordingConnection):
    def cursor(self):
        return BusyCursor(self.log)


def test_writers_take_turns_on_a_row_lock_held_by_a_connection_of_its_own():
    conn, lock_conn = RecordingConnection(), RecordingConnection()
    store = HanaStore("hana://APP:pw@db.example:443/?schema=FIN", connection=conn, lock_connection=lock_conn)
    assert any(sql.startswith("CREATE TABLE fintune_locks") for sql, _ in conn.log)
    before = list(conn.log)
    with store.lock("tenk"), store.lock("tenk"):  # re-entrant: one row lock
        assert lock_conn.log[0][0] == 'SET SCHEMA "FIN"'
        assert ("INSERT INTO fintune_locks (name) VALUES (?)", ("tenk",)) in lock_conn.log
        locks = [(sql, p) for sql, p in lock_conn.log if "FOR UPDATE" in sql]
        assert locks == [("SELECT name FROM fintune_locks WHERE name = ? FOR UPDATE NOWAIT", ("tenk",))]
        assert lock_conn.rollbacks == 0
    assert lock_conn.rollbacks == 1  # the transaction holding the row ends with the lock
    assert conn.log == before  # the main connection's commits cannot free it
    with pytest.raises(ValueError, match="collection name"), store.lock('x"; DROP TABLE t; --'):
        pass


def test_a_held_lock_is_waited_for():
    lock_conn = BusyConnection()
    store = HanaStore("hana://APP:pw@db.example:443", connection=RecordingConnection(), lock_connection=lock_conn)
    with store.lock("tenk"):
        locks = [sql for sql, _ in lock_conn.log if "FOR UPDATE" in sql]
        assert locks[0].endswith("FOR UPDATE NOWAIT") and locks[-1].endswith("FOR UPDATE")
