"""SAP HANA Cloud through `langchain-hana`'s HanaDB: REAL_VECTOR columns, cosine similarity, HNSW index.

The connection comes from a `hana://user:password@host:port/?schema=NAME` URL or, for `--store hana`,
from the environment: HANA_HOST, HANA_PORT (default 443), HANA_USER, HANA_PASSWORD, optional
HANA_SCHEMA. HanaDB has no document id column, so fintune keeps its id and content hash in two
metadata columns of their own and replaces a document by deleting and inserting it in one transaction.

HANA has no advisory locks, so concurrent writers take turns on a row lock: `SELECT ... FOR UPDATE` of
the collection's row in `fintune_locks`, on a second connection of its own, so that the catalog's and
the upserts' commits on the main connection do not free it; HANA rolls the lock back when a killed
writer's connection drops. A lock row cannot exist before its table, so the set-up has no lock here:
creating a catalog table that a concurrent process has just created is taken as done.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from fintune.retrieval.catalog import HANA, Catalog, CollectionInfo, StoreError, create_table_once, execute
from fintune.retrieval.stores.base import Hit, Row, Store, VectorsGiven

ID_COLUMN, HASH_COLUMN = "fintune_id", "fintune_hash"
ENV_VARS = ("HANA_HOST", "HANA_PORT", "HANA_USER", "HANA_PASSWORD", "HANA_SCHEMA")
LOCKS_DDL = "CREATE TABLE fintune_locks (name NVARCHAR(256) PRIMARY KEY)"
# Keyword search with HANA's own text search, in exactly the form langchain-hana uses (and tests) for its
# `$contains` filter: SCORE(? IN (column EXACT SEARCH MODE 'text')), HANA's TF-IDF-based relevance, > 0 when
# a term occurs. Not run against a server here (no HANA in CI); the unit tests check the SQL and parameters.
KEYWORD_MATCH = "SCORE(? IN (\"VEC_TEXT\" EXACT SEARCH MODE 'text'))"
TERM = re.compile(r"[^\W_]+")  # words and numbers: HANA's search syntax (quotes, -, *, OR) is never passed on


@dataclass(frozen=True)
class HanaConnection:
    host: str
    port: int
    user: str
    password: str
    schema: str | None = None

    def connect_kwargs(self) -> dict[str, Any]:
        # HANA Cloud accepts TLS connections only
        return {
            "address": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "encrypt": True,
            "sslValidateCertificate": True,
            "autocommit": False,
        }


def hana_connection(url: str, environ: dict[str, str] | None = None) -> HanaConnection:
    """`hana://user:password@host:port/?schema=S`, or `hana` / `hana://` to read HANA_* variables."""
    env = os.environ if environ is None else environ
    parts = urlsplit(url if "://" in url else "hana://")
    schema = parse_qs(parts.query).get("schema", [""])[0] or env.get("HANA_SCHEMA") or None
    host = parts.hostname or env.get("HANA_HOST")
    user = unquote(parts.username) if parts.username else env.get("HANA_USER")
    password = unquote(parts.password) if parts.password else env.get("HANA_PASSWORD")
    port = parts.port or int(env.get("HANA_PORT") or 443)
    missing = [
        name for name, value in (("HANA_HOST", host), ("HANA_USER", user), ("HANA_PASSWORD", password)) if not value
    ]
    if missing:
        raise StoreError(
            f"SAP HANA connection incomplete: set {', '.join(missing)} (or give hana://user:password@host:port)"
        )
    return HanaConnection(str(host), port, str(user), str(password), schema)


def hana_configured(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return all(env.get(v) for v in ("HANA_HOST", "HANA_USER", "HANA_PASSWORD"))


class HanaStore(Store):
    kind = "hana"

    def __init__(self, url: str, connection: Any | None = None, lock_connection: Any | None = None):
        self.settings = hana_connection(url)
        self.conn = self._open(connection)
        self._lock_given = lock_connection
        self._lock_conn: Any = None  # the locks' own connection, opened on first use
        self.catalog = Catalog(self.conn, HANA, self._table_exists)
        create_table_once(self.conn, LOCKS_DDL, lambda: self._table_exists("fintune_locks"))
        self._stores: dict[str, Any] = {}

    def _open(self, connection: Any | None) -> Any:
        """`connection`, or a new one, in the store's schema."""
        if connection is None:
            from hdbcli import dbapi

            try:
                connection = dbapi.connect(**self.settings.connect_kwargs())
            except dbapi.Error as exc:
                raise StoreError(f"cannot connect to SAP HANA at {self.display}: {exc}") from exc
        if self.settings.schema:
            execute(connection, f'SET SCHEMA "{_identifier(self.settings.schema)}"')
        return connection

    def _acquire(self, key: str, wait: bool) -> bool:
        from hdbcli import dbapi

        if self._lock_conn is None:
            self._lock_conn = self._open(self._lock_given)
        conn = self._lock_conn
        _ensure_lock_row(conn, key)
        try:
            rows = execute(
                conn, f"SELECT name FROM fintune_locks WHERE name = ? FOR UPDATE{'' if wait else ' NOWAIT'}", (key,)
            )
        except dbapi.Error as exc:
            conn.rollback()
            if wait:  # HANA's lock wait timeout (30 minutes by default)
                raise StoreError(f"gave up waiting for another writer of {key!r} in {self.display}: {exc}") from exc
            return False  # NOWAIT: another process holds the row
        return bool(rows)

    def _release(self, key: str) -> None:
        if self._lock_conn is not None:
            self._lock_conn.rollback()  # ends the transaction that holds the row lock

    @property
    def display(self) -> str:
        schema = f"/?schema={self.settings.schema}" if self.settings.schema else ""
        return f"hana://{self.settings.user}@{self.settings.host}:{self.settings.port}{schema}"

    def _execute(self, statement: str, params: tuple = ()) -> list[tuple]:
        return execute(self.conn, statement, params)

    def _table_exists(self, table: str) -> bool:
        # unquoted catalog tables are stored upper-case; collection tables are quoted as written
        rows = self._execute(
            "SELECT COUNT(*) FROM SYS.TABLES WHERE SCHEMA_NAME = CURRENT_SCHEMA AND TABLE_NAME IN (?, ?)",
            (table, table.upper()),
        )
        return bool(rows and rows[0][0])

    def _hana_db(self, name: str, embeddings: Embeddings | None = None) -> Any:
        if embeddings is not None or name not in self._stores:
            return self._make(name, embeddings)
        return self._stores[name]

    def _make(self, name: str, embeddings: Embeddings | None) -> Any:
        from langchain_hana import HanaDB
        from langchain_hana.utils import DistanceStrategy

        info = self.catalog.get(name)
        dimension = info.dimension if info else -1
        store = HanaDB(
            connection=self.conn,
            embedding=embeddings or VectorsGiven(),
            distance_strategy=DistanceStrategy.COSINE,
            table_name=name,
            vector_column_type="REAL_VECTOR",
            vector_column_length=dimension,
            specific_metadata_columns=[ID_COLUMN, HASH_COLUMN],
        )
        self._stores[name] = store
        return store

    def create_collection(self, info: CollectionInfo) -> None:
        ddl = (
            f'CREATE TABLE "{_identifier(info.name)}" ("VEC_TEXT" NCLOB, "VEC_META" NCLOB, '
            f'"VEC_VECTOR" REAL_VECTOR({info.dimension}), "{ID_COLUMN}" NVARCHAR(256), "{HASH_COLUMN}" NVARCHAR(64))'
        )
        with self.lock(info.logical):
            create_table_once(self.conn, ddl, lambda: self._table_exists(info.name))

    def drop_collection(self, name: str) -> None:
        self._stores.pop(name, None)
        self._execute(f'DROP TABLE "{_identifier(name)}"')
        self.conn.commit()

    def count(self, name: str) -> int:
        rows = self._execute(f'SELECT COUNT(*) FROM "{_identifier(name)}"')
        return int(rows[0][0]) if rows else 0

    def hashes(self, name: str, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self._execute(
            f'SELECT "{ID_COLUMN}", "{HASH_COLUMN}" FROM "{_identifier(name)}" WHERE "{ID_COLUMN}" IN ({marks})',
            tuple(ids),
        )
        return {r[0]: r[1] for r in rows}

    def upsert(self, name: str, rows: list[Row]) -> None:
        if not rows:
            return
        store = self._hana_db(name)
        try:
            store.delete(filter={ID_COLUMN: {"$in": [r.id for r in rows]}})
            store.add_texts(
                [r.text for r in rows],
                metadatas=[{**r.metadata, ID_COLUMN: r.id, HASH_COLUMN: r.hash} for r in rows],
                embeddings=[r.vector for r in rows],
            )
            self.conn.commit()  # delete + insert land together
        except Exception:
            self.conn.rollback()
            raise

    def build_index(self, name: str) -> str:
        try:
            self._hana_db(name).create_hnsw_index()
            self.conn.commit()
        except Exception as exc:  # hdbcli raises one error type; an existing index is not a failure
            if "exist" not in str(exc).lower():
                raise
            return "HNSW index kept up to date by HANA"
        return "HNSW cosine index built"

    def candidates(
        self, name: str, vector: list[float], k: int, filter: dict[str, Any] | None, with_vectors: bool
    ) -> list[Hit]:
        results = self._hana_db(name).similarity_search_with_score_and_vector_by_vector(vector, k=k, filter=filter)
        hits = []
        for doc, score, doc_vector in results:
            metadata = {k2: v for k2, v in doc.metadata.items() if k2 not in (ID_COLUMN, HASH_COLUMN)}
            hits.append(
                Hit(
                    id=str(doc.metadata.get(ID_COLUMN)),
                    score=float(score),
                    text=doc.page_content,
                    metadata=metadata,
                    vector=list(doc_vector) if with_vectors else None,
                )
            )
        return hits

    def keyword_search(self, name: str, query: str, k: int, filter: dict[str, Any] | None) -> list[Hit]:
        from langchain_hana.vectorstores.create_where_clause import CreateWhereClause

        terms = hana_search_terms(query)
        if not terms:
            return []
        # the vector search's own filter translation, so filters mean the same on both sides
        where, where_params = CreateWhereClause(self._hana_db(name))(filter)
        condition = f"{where} AND {KEYWORD_MATCH} > 0" if where else f"WHERE {KEYWORD_MATCH} > 0"
        statement = (
            f'SELECT TOP {int(k)} "VEC_TEXT", "VEC_META", "{ID_COLUMN}", {KEYWORD_MATCH} AS KEYWORD_SCORE '
            f'FROM "{_identifier(name)}" {condition} ORDER BY KEYWORD_SCORE DESC, "{ID_COLUMN}"'
        )
        rows = self._execute(statement, (terms, *where_params, terms))
        return [_keyword_hit(r) for r in rows]

    def vectorstore(self, name: str, embeddings: Embeddings) -> VectorStore:
        return self._hana_db(name, embeddings)

    def close(self) -> None:
        self.conn.close()
        if self._lock_conn is not None:
            self._lock_conn.close()


def _ensure_lock_row(conn: Any, key: str) -> None:
    from hdbcli import dbapi

    if execute(conn, "SELECT COUNT(*) FROM fintune_locks WHERE name = ?", (key,))[0][0]:
        return
    try:
        execute(conn, "INSERT INTO fintune_locks (name) VALUES (?)", (key,))
        conn.commit()
    except dbapi.IntegrityError:
        conn.rollback()  # a concurrent writer inserted it first


def hana_search_terms(query: str) -> str:
    """The query's words OR-ed, each quoted: a question's words rarely all occur in its passage (HANA ANDs)."""
    words = list(dict.fromkeys(w.lower() for w in TERM.findall(query)))
    return " OR ".join(f'"{w}"' for w in words)


def _keyword_hit(row: tuple) -> Hit:
    import json

    metadata = json.loads(row[1]) if isinstance(row[1], str) and row[1] else {}
    kept = {k: v for k, v in metadata.items() if k not in (ID_COLUMN, HASH_COLUMN)}
    return Hit(id=str(row[2]), score=float(row[3]), text=row[0] or "", metadata=kept)


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise StoreError(f"not an identifier: {name!r}")
    return name
