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

    def drop_collection(self, name: str) -> None:
        self._stores.pop(name, None)
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
        if store.is_valid_index(index_name):
            return "HNSW index kept up to date by PostgreSQL"
        store.apply_vector_index(HNSWIndex(name=index_name))
        return f"HNSW cosine index {index_name} built"

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
    metadata = {k: v for k, v in (doc.metadata or {}).items() if k != HASH_KEY}
    return Hit(id=str(doc.id), score=score, text=doc.page_content, metadata=metadata)
