"""PostgreSQL + pgvector through `langchain-postgres`' PGVectorStore, with an HNSW cosine index.

PGVectorStore does the table layout, the upserts (ON CONFLICT on the id), the filters (bound
parameters) and the HNSW index; fintune adds the catalog, connection checks with plain-language
errors, and content hashes for resumable indexing. A short psycopg connection serves the catalog.

Concurrent writers take turns under session-level advisory locks on that connection (`Store.lock`):
one around the set-up (pgvector extension, catalog tables), since concurrent CREATE ... IF NOT EXISTS
races on PostgreSQL's own catalogs, and one per collection around creating a version, each batch's
read-skip-upsert and the catalog updates. A session lock outlives the catalog's commits and the upserts
PGVectorStore runs on its own connections; the server frees it when a killed writer's connection closes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from fintune.retrieval.catalog import POSTGRES, Catalog, CollectionInfo, StoreError
from fintune.retrieval.stores.base import SETUP_LOCK, Hit, Row, Store, VectorsGiven

HASH_KEY = "_fintune_hash"  # kept in the metadata JSON; stripped from what searches return
HNSW_EF_SEARCH = 100  # pgvector's default 40 loses recall at k=10 on 100k rows
# Keyword search reads a stored tsvector column (PostgreSQL's 'english' configuration: stemming, stop words),
# generated from `content` so it can never fall out of step, under a GIN index. Named as langchain-postgres
# names its own hybrid-search column. Stored rather than an expression index: ranking reads each matching
# passage's tsvector, and re-parsing the passages made every query ~3.6x slower on the 10-K corpus.
TSV_COLUMN = "content_tsv"
TSV_DDL = (
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english', content)) STORED"
)
# BM25 over PostgreSQL's own lexemes, written here because ts_rank and ts_rank_cd use no document frequencies:
# on the 10-K dev set ts_rank_cd scored NDCG@10 0.511 where BM25 (LanceDB) scores 0.773, too weak for the fusion
# to gain from. Terms are the query's lexemes (to_tsvector: the passages' own stemming and stop words), OR-ed;
# df comes from the GIN index, tf from the tsvector's positions, lengths in distinct lexemes; Lucene's idf,
# k1 1.2, b 0.75. The CTEs are MATERIALIZED: inlined, the df counts would rerun for every matching passage.
# The query text is a bound parameter; only identifiers (psycopg.sql.Identifier) are composed into the SQL.
BM25_K1, BM25_B = 1.2, 0.75
KEYWORD_SQL = """
WITH terms AS MATERIALIZED (
    SELECT DISTINCT lexeme FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS lexeme
), corpus AS MATERIALIZED (
    SELECT count(*)::float8 AS n, greatest(avg(length({column})), 1)::float8 AS avgdl FROM {table}
), idf AS MATERIALIZED (
    SELECT t.lexeme, ln(1 + (c.n - t.df + 0.5) / (t.df + 0.5)) AS idf
    FROM (SELECT lexeme, (SELECT count(*) FROM {table} WHERE {column} @@ quote_literal(lexeme)::tsquery) AS df
          FROM terms) AS t, corpus AS c
), matched AS (
    SELECT langchain_id, content, langchain_metadata, {column} AS tsv FROM {table}
    WHERE {column} @@ (SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery FROM terms){filters}
)
SELECT m.langchain_id, m.content, m.langchain_metadata,
    (SELECT sum(i.idf * u.tf * (%(k1)s + 1) / (u.tf + %(k1)s * (1 - %(b)s + %(b)s * length(m.tsv) / c.avgdl)))
     FROM (SELECT lexeme, coalesce(array_length(positions, 1), 1) AS tf FROM unnest(m.tsv)) AS u
     JOIN idf AS i USING (lexeme)) AS score
FROM matched AS m, corpus AS c
ORDER BY score DESC, m.langchain_id
LIMIT %(k)s
"""


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def explain_connect_error(url: str, exc: Exception) -> StoreError:
    """psycopg's message, reduced to what went wrong and what to check."""
    parts = urlsplit(url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return StoreError(
            f"PostgreSQL at {where} refused the login of user {parts.username!r}: wrong password ({text})"
        )
    if "does not exist" in lowered and "database" in lowered:
        return StoreError(f"PostgreSQL at {where}: {text}; create the database or fix the URL")
    if "refused" in lowered or "could not connect" in lowered or "timeout" in lowered or "no route" in lowered:
        return StoreError(f"cannot reach PostgreSQL at {where} ({text}); is the server running and the URL right?")
    return StoreError(f"PostgreSQL at {where}: {text}")


class PgVectorStore(Store):
    kind = "pgvector"

    def __init__(self, url: str, connect_timeout: int = 5):
        import psycopg

        self.url = url
        base = url.replace("postgresql+psycopg://", "postgresql://", 1).replace("postgres://", "postgresql://", 1)
        try:
            self.conn = psycopg.connect(base, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise explain_connect_error(url, exc) from exc
        self._engine: Any = None
        self._stores: dict[str, Any] = {}
        self._text_indexed: set[str] = set()  # tables known to have their full-text index
        with self.lock(SETUP_LOCK):
            self._ensure_pgvector()
            self.catalog = Catalog(self.conn, POSTGRES, self._table_exists)

    @property
    def display(self) -> str:
        return redact(self.url)

    def _acquire(self, key: str, wait: bool) -> bool:
        with self.conn.cursor() as cur:
            if wait:
                cur.execute("SELECT pg_advisory_lock(%s)", (_lock_id(key),))
            else:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (_lock_id(key),))
            row = cur.fetchone()
        self.conn.commit()  # the lock belongs to the session, not to this transaction
        return wait or bool(row and row[0])

    def _release(self, key: str) -> None:
        from psycopg.pq import TransactionStatus

        if self.conn.closed or self.conn.broken:
            return  # the session, and its locks, are gone
        if self.conn.info.transaction_status == TransactionStatus.INERROR:
            self.conn.rollback()  # an error inside the lock: the unlock must still run
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_lock_id(key),))
        self.conn.commit()

    def _ensure_pgvector(self) -> None:
        import psycopg

        with self.conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
            if cur.fetchone():
                return
        try:
            with self.conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
            self.conn.commit()
        except psycopg.Error as exc:
            self.conn.rollback()
            reason = str(exc).strip().splitlines()[0]
            raise StoreError(
                f"the pgvector extension is not enabled in database {self.conn.info.dbname!r} and could not be "
                f"created ({reason}); install pgvector on the server and run CREATE EXTENSION vector as an owner"
            ) from exc

    def _table_exists(self, table: str) -> bool:
        with self.conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",))
            row = cur.fetchone()
        return bool(row and row[0])

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from langchain_postgres import PGEngine

            url = self.url.split("://", 1)[1]
            self._engine = PGEngine.from_connection_string(f"postgresql+psycopg://{url}")
        return self._engine

    def _pg_store(self, name: str, embeddings: Embeddings | None = None) -> Any:
        if name not in self._stores or embeddings is not None:
            from langchain_postgres import PGVectorStore
            from langchain_postgres.v2.indexes import HNSWQueryOptions

            self._stores[name] = PGVectorStore.create_sync(
                self.engine,
                embeddings or VectorsGiven(),
                name,
                index_query_options=HNSWQueryOptions(ef_search=HNSW_EF_SEARCH),
            )
        return self._stores[name]

    def create_collection(self, info: CollectionInfo) -> None:
        from langchain_postgres import Column

        with self.lock(info.logical):
            if not self._table_exists(info.name):
                self.engine.init_vectorstore_table(info.name, info.dimension, id_column=Column("langchain_id", "TEXT"))
            self._ensure_text_index(info.name)

    def _ensure_text_index(self, name: str) -> str:
        """The generated tsvector column and its GIN index (a table rewrite for a filled, older collection)."""
        from psycopg import sql

        index = f"{name}_fts"
        if self._table_exists(index):
            self._text_indexed.add(name)
            return f"full-text index {index} kept up to date by PostgreSQL"
        table, column = sql.Identifier(name), sql.Identifier(TSV_COLUMN)
        with self.conn.cursor() as cur:
            cur.execute(sql.SQL(TSV_DDL).format(table=table, column=column))
            cur.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin ({})").format(
                    sql.Identifier(index), table, column
                )
            )
        self.conn.commit()
        self._text_indexed.add(name)
        return f"full-text index {index} built"

    def drop_collection(self, name: str) -> None:
        self._stores.pop(name, None)
        self._text_indexed.discard(name)
        with self.conn.cursor() as cur:
            # the name is a checked identifier (catalog.NAME), never user text with quotes
            cur.execute(f'DROP TABLE IF EXISTS "{name}"')
        self.conn.commit()

    def count(self, name: str) -> int:
        with self.conn.cursor() as cur:
            cur.execute(f'SELECT count(*) FROM "{name}"')
            row = cur.fetchone()
        self.conn.commit()
        return int(row[0]) if row else 0

    def hashes(self, name: str, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        with self.conn.cursor() as cur:
            cur.execute(
                f'SELECT langchain_id, langchain_metadata->>%s FROM "{name}" WHERE langchain_id = ANY(%s)',
                (HASH_KEY, list(ids)),
            )
            rows = cur.fetchall()
        self.conn.commit()
        return {r[0]: r[1] for r in rows}

    def upsert(self, name: str, rows: list[Row]) -> None:
        if not rows:
            return
        self._pg_store(name).add_embeddings(
            texts=[r.text for r in rows],
            embeddings=[r.vector for r in rows],
            metadatas=[{**r.metadata, HASH_KEY: r.hash} for r in rows],
            ids=[r.id for r in rows],
        )

    def build_index(self, name: str) -> str:
        from langchain_postgres.v2.indexes import HNSWIndex

        store = self._pg_store(name)
        index_name = f"{name}_hnsw"
        text = self._ensure_text_index(name)  # collections created before hybrid search have none yet
        if store.is_valid_index(index_name):
            return f"HNSW index kept up to date by PostgreSQL; {text}"
        store.apply_vector_index(HNSWIndex(name=index_name))
        return f"HNSW cosine index {index_name} built; {text}"

    def candidates(
        self, name: str, vector: list[float], k: int, filter: dict[str, Any] | None, with_vectors: bool
    ) -> list[Hit]:
        store = self._pg_store(name)
        pairs = store.similarity_search_with_score_by_vector(vector, k=k, filter=filter or None)
        hits = [_hit(doc, 1.0 - float(distance)) for doc, distance in pairs]
        if with_vectors and hits:
            vectors = self._vectors(name, [h.id for h in hits])
            for h in hits:
                h.vector = vectors[h.id]
        return hits

    def keyword_search(self, name: str, query: str, k: int, filter: dict[str, Any] | None) -> list[Hit]:
        from psycopg import sql

        if name not in self._text_indexed:  # without the index every search would parse each passage
            info = self.catalog.get(name)
            with self.lock(info.logical if info else name):
                self._ensure_text_index(name)
        params: dict[str, Any] = {"query": query, "k": k, "k1": BM25_K1, "b": BM25_B}
        filters: sql.Composable = sql.SQL("")
        for n, (key, value) in enumerate((filter or {}).items()):
            # as langchain-postgres filters metadata for vector search: the JSON field as text = the value
            if value is None:
                raise StoreError(f"cannot filter on {key!r} = None: give a value")
            params[f"key{n}"], params[f"value{n}"] = key, value if isinstance(value, str) else json.dumps(value)
            filters += sql.SQL(" AND langchain_metadata->>{} = {}").format(
                sql.Placeholder(f"key{n}"), sql.Placeholder(f"value{n}")
            )
        statement = sql.SQL(KEYWORD_SQL).format(
            table=sql.Identifier(name), column=sql.Identifier(TSV_COLUMN), filters=filters
        )
        with self.conn.cursor() as cur:
            cur.execute(statement, params)
            rows = cur.fetchall()
        self.conn.commit()
        return [_row_hit(r[0], r[1], r[2], float(r[3])) for r in rows]

    def _vectors(self, name: str, ids: list[str]) -> dict[str, list[float]]:
        with self.conn.cursor() as cur:
            cur.execute(f'SELECT langchain_id, embedding::text FROM "{name}" WHERE langchain_id = ANY(%s)', (ids,))
            rows = cur.fetchall()
        self.conn.commit()
        return {r[0]: json.loads(r[1]) for r in rows}

    def vectorstore(self, name: str, embeddings: Embeddings) -> VectorStore:
        return self._pg_store(name, embeddings)

    def close(self) -> None:
        self.conn.close()
        if self._engine is not None:
            self._engine._run_as_sync(self._engine.close())  # PGEngine only offers an async close


def _lock_id(key: str) -> int:
    """A stable signed 64-bit advisory-lock id for `key`, in fintune's own namespace."""
    digest = hashlib.blake2b(f"fintune:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _hit(doc: Any, score: float) -> Hit:
    return _row_hit(doc.id, doc.page_content, doc.metadata, score)


def _row_hit(doc_id: Any, text: str, metadata: dict[str, Any] | str | None, score: float) -> Hit:
    fields: dict[str, Any] = json.loads(metadata) if isinstance(metadata, str) else (metadata or {})
    kept = {k: v for k, v in fields.items() if k != HASH_KEY}
    return Hit(id=str(doc_id), score=score, text=text, metadata=kept)
