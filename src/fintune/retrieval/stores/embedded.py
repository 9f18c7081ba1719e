"""The embedded default store: LanceDB in a folder, no server, plus a SQLite catalog beside it.

LanceDB gives persistence with atomic commits (an interrupted write leaves the previous version),
upserts by id (`merge_insert`), prefiltered search with typed filter expressions (no SQL text built from
user input) and an HNSW index with scalar quantisation. Metadata fields present when a collection is
created become their own columns, so they can be filtered; every field is also kept as JSON.

LanceDB lets several processes commit to one table, but an upsert by id only sees the rows committed
before it began: two writers of the same new ids would both insert them. Writers therefore take turns
per collection, holding a file lock (`fintune_locks/<collection>.lock`, flock: freed by the kernel when
a holder dies) around each batch's read-skip-upsert and the catalog updates.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from fintune.retrieval.catalog import SQLITE, Catalog, CollectionInfo, StoreError
from fintune.retrieval.stores.base import SETUP_LOCK, Hit, Row, Store, mmr_select

CATALOG_FILE = "fintune_catalog.sqlite"
LOCKS_FOLDER = "fintune_locks"
META_PREFIX = "meta_"
# Below this many rows an exact scan is fast enough and an index would only add build time.
INDEX_MIN_ROWS = 20_000
# Search-time settings of the HNSW-SQ index, chosen on the 100k-passage benchmark: ef 100 plus re-ranking
# 4k candidates by their full vectors keeps recall@10 against exact search near 1.0.
HNSW_EF = 100
REFINE_FACTOR = 4


def _schema(dimension: int, metadata_fields: Iterable[str]) -> pa.Schema:
    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), dimension)),
        pa.field("hash", pa.string()),
        pa.field("metadata", pa.string()),
    ]
    fields += [pa.field(META_PREFIX + f, pa.string()) for f in metadata_fields]
    return pa.schema(fields)


class EmbeddedStore(Store):
    kind = "embedded"

    def __init__(self, folder: str | Path):
        import lancedb

        self.folder = Path(folder).expanduser()
        if self.folder.exists() and not self.folder.is_dir():
            raise StoreError(f"{self.folder} is a file; the embedded store is a folder")
        (self.folder / LOCKS_FOLDER).mkdir(parents=True, exist_ok=True)
        self.db = lancedb.connect(str(self.folder))
        self._tables: dict[str, Any] = {}
        self._indexed: dict[str, bool] = {}  # per table: listing indices on every search cost a round trip
        self._fts: set[str] = set()  # tables known to have their full-text index
        self._locks: dict[str, Any] = {}
        self._sqlite = sqlite3.connect(str(self.folder / CATALOG_FILE), timeout=30)
        with self.lock(SETUP_LOCK):
            self.catalog = Catalog(self._sqlite, SQLITE, self._catalog_table_exists)

    def _acquire(self, key: str, wait: bool) -> bool:
        from filelock import FileLock, Timeout

        lock = self._locks.setdefault(key, FileLock(self.folder / LOCKS_FOLDER / f"{key}.lock"))
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except Timeout:
            return False
        # Another process may have committed since these were opened; a writer must read the latest versions.
        self._tables.clear()
        self._indexed.clear()
        return True

    def _release(self, key: str) -> None:
        self._locks[key].release()

    def _catalog_table_exists(self, table: str) -> bool:
        rows = self._sqlite.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        return rows.fetchone() is not None

    @property
    def display(self) -> str:
        return str(self.folder)

    def table(self, name: str) -> Any:
        if name not in self._tables:
            try:
                self._tables[name] = self.db.open_table(name)
            except (FileNotFoundError, ValueError) as exc:
                raise StoreError(f"collection table {name!r} is missing from {self.folder}") from exc
        return self._tables[name]

    def create_collection(self, info: CollectionInfo) -> None:
        with self.lock(info.logical):
            self.db.create_table(info.name, schema=_schema(info.dimension, info.metadata_fields), exist_ok=True)

    def indexed(self, name: str) -> bool:
        if name not in self._indexed:
            self._indexed[name] = _has_vector_index(self.table(name))
        return self._indexed[name]

    def drop_collection(self, name: str) -> None:
        self._tables.pop(name, None)
        self._indexed.pop(name, None)
        self._fts.discard(name)
        self.db.drop_table(name)

    def count(self, name: str) -> int:
        return int(self.table(name).count_rows())

    def rows_by_id(self, name: str, ids: list[str], columns: list[str]) -> pa.Table:
        """The stored rows among `ids` (a filter-only scan, no vector search)."""
        from lancedb.expr import col

        return self.table(name).search().where(col("id").isin(list(ids))).select(columns).limit(len(ids)).to_arrow()

    def hashes(self, name: str, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        arrow = self.rows_by_id(name, ids, ["id", "hash"])
        return dict(zip(arrow["id"].to_pylist(), arrow["hash"].to_pylist(), strict=True))

    def upsert(self, name: str, rows: list[Row]) -> None:
        if not rows:
            return
        table = self.table(name)
        fields = _metadata_fields(table)
        dim = table.schema.field("vector").type.list_size
        columns: dict[str, Any] = {
            "id": [r.id for r in rows],
            "text": [r.text for r in rows],
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array([x for r in rows for x in r.vector], pa.float32()), dim
            ),
            "hash": [r.hash for r in rows],
            "metadata": [json.dumps(r.metadata, ensure_ascii=False) for r in rows],
        }
        for f in fields:
            columns[META_PREFIX + f] = [_as_text(r.metadata.get(f)) for r in rows]
        batch = pa.table(columns, schema=table.schema)
        # One commit: a killed run leaves the table at its previous version, never half a batch.
        table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(batch)

    def build_index(self, name: str) -> str:
        from lancedb.index import HnswSq

        table = self.table(name)
        rows = table.count_rows()
        fts = self._ensure_fts(name)
        if self.indexed(name):
            table.optimize()  # folds rows added since the index was built into it
            return f"HNSW-SQ index refreshed ({rows} rows); {fts}"
        if rows < INDEX_MIN_ROWS:
            if fts.endswith("kept"):
                table.optimize()  # folds rows added since into the full-text index
            return f"exact search ({rows} rows, index from {INDEX_MIN_ROWS}); {fts}"
        table.create_index("vector", config=HnswSq(distance_type="cosine", num_partitions=1))
        self._indexed[name] = True
        return f"HNSW-SQ index built ({rows} rows); {fts}"

    def _ensure_fts(self, name: str) -> str:
        """Create the BM25 full-text index on `text` unless it exists (LanceDB's native inverted index).

        LanceDB refuses full-text queries without one; rows added after it was built are still searched
        (unindexed rows are scanned) until `optimize` folds them in."""
        from lancedb.index import FTS

        if name in self._fts:
            return "full-text index kept"
        table = self.table(name)
        if any(getattr(ix, "index_type", "") == "FTS" for ix in table.list_indices()):
            self._fts.add(name)
            return "full-text index kept"
        # English stemming and stop words: LanceDB's defaults, the usual BM25 set-up for English filings
        table.create_index("text", config=FTS())
        self._fts.add(name)
        return "full-text index built"

    def candidates(
        self, name: str, vector: list[float], k: int, filter: dict[str, Any] | None, with_vectors: bool
    ) -> list[Hit]:
        table = self.table(name)
        query = table.search(vector, vector_column_name="vector").distance_type("cosine").limit(k)
        if self.indexed(name):
            query = query.ef(max(HNSW_EF, 2 * k)).refine_factor(REFINE_FACTOR)
        if filter:
            query = query.where(self._filter_expr(table, filter), prefilter=True)
        columns = ["id", "text", "metadata", "_distance"] + (["vector"] if with_vectors else [])
        arrow = query.select(columns).to_arrow()
        hits = []
        for i in range(arrow.num_rows):
            hits.append(
                Hit(
                    id=arrow["id"][i].as_py(),
                    score=1.0 - float(arrow["_distance"][i].as_py()),
                    text=arrow["text"][i].as_py(),
                    metadata=json.loads(arrow["metadata"][i].as_py() or "{}"),
                    vector=arrow["vector"][i].as_py() if with_vectors else None,
                )
            )
        return hits

    def keyword_search(self, name: str, query: str, k: int, filter: dict[str, Any] | None) -> list[Hit]:
        if not query.strip():
            return []
        if name not in self._fts:  # a collection indexed before hybrid search existed: index it once now
            info = self.catalog.get(name)
            with self.lock(info.logical if info else name):
                self._ensure_fts(name)
        table = self.table(name)
        # a plain string is a MatchQuery: terms OR-ed, BM25-scored; no query syntax is parsed from it
        search = table.search(query, query_type="fts").limit(k)
        if filter:
            search = search.where(self._filter_expr(table, filter), prefilter=True)
        arrow = search.select(["id", "text", "metadata", "_score"]).to_arrow()
        return [
            Hit(
                id=arrow["id"][i].as_py(),
                score=float(arrow["_score"][i].as_py()),
                text=arrow["text"][i].as_py(),
                metadata=json.loads(arrow["metadata"][i].as_py() or "{}"),
            )
            for i in range(arrow.num_rows)
        ]

    def _filter_expr(self, table: Any, filter: dict[str, Any]) -> Any:
        from lancedb.expr import col, lit

        filterable = _metadata_fields(table)
        expr = None
        for key, value in filter.items():
            if key not in filterable:
                raise StoreError(f"cannot filter on {key!r}: this collection's filterable fields are {filterable}")
            text = _as_text(value)
            if text is None:  # lancedb has no literal for None (a TypeError); missing fields are stored as null
                raise StoreError(f"cannot filter on {key!r} = None: give a value")
            term = col(META_PREFIX + key) == lit(text)
            expr = term if expr is None else expr & term
        return expr

    def vectorstore(self, name: str, embeddings: Embeddings) -> VectorStore:
        return LanceVectorStore(self, name, embeddings)

    def close(self) -> None:
        self._sqlite.close()


def _metadata_fields(table: Any) -> list[str]:
    """The metadata fields that have a column of their own (filterable) in this collection."""
    return [f.name[len(META_PREFIX) :] for f in table.schema if f.name.startswith(META_PREFIX)]


def _has_vector_index(table: Any) -> bool:
    return any("vector" in getattr(ix, "columns", []) for ix in table.list_indices())


def _as_text(value: Any) -> str | None:
    return None if value is None else str(value)


class LanceVectorStore(VectorStore):
    """A fintune collection in the embedded store as a LangChain `VectorStore`.

    LangChain's LanceDB integration lives in the community package, which LangChain is retiring, and
    knows neither fintune's id upserts nor its typed filters; this one delegates to `EmbeddedStore`.
    """

    def __init__(self, store: EmbeddedStore, name: str, embeddings: Embeddings):
        self.store = store
        self.name = name
        self._embeddings = embeddings

    @property
    def embeddings(self) -> Embeddings:
        return self._embeddings

    def add_texts(
        self, texts: Iterable[str], metadatas: list[dict] | None = None, *, ids: list[str] | None = None, **_: Any
    ) -> list[str]:
        from fintune.retrieval.corpus import CorpusDoc

        texts = list(texts)
        metadatas = metadatas or [{} for _ in texts]
        if ids is None:
            raise ValueError("give ids: documents are upserted by id")
        vectors = self._embeddings.embed_documents(texts)
        rows = [
            Row(i, t, v, m, CorpusDoc(i, t, m).content_hash)
            for i, t, v, m in zip(ids, texts, vectors, metadatas, strict=True)
        ]
        with self.store.lock(self._logical()):
            self.store.upsert(self.name, rows)
        return list(ids)

    def _logical(self) -> str:
        """The collection whose lock guards this version's writes."""
        info = self.store.catalog.get(self.name)
        return info.logical if info else self.name

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict | None = None, **_: Any
    ) -> list[tuple[Document, float]]:
        hits = self.store.candidates(self.name, embedding, k, filter, with_vectors=False)
        return [(_document(h), h.score) for h in hits]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict | None = None, **kwargs: Any
    ) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, filter)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict | None = None, **_: Any
    ) -> list[tuple[Document, float]]:
        return self.similarity_search_with_score_by_vector(self._embeddings.embed_query(query), k, filter)

    def similarity_search(self, query: str, k: int = 4, filter: dict | None = None, **_: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter)]

    def _select_relevance_score_fn(self) -> Any:
        return lambda score: score  # scores are already cosine similarities

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: dict | None = None,
        **_: Any,
    ) -> list[Document]:
        pool = self.store.candidates(self.name, embedding, fetch_k, filter, with_vectors=True)
        return [_document(h) for h in mmr_select(embedding, pool, k, lambda_mult)]

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        vector = self._embeddings.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(vector, k, fetch_k, lambda_mult, **kwargs)

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        arrow = self.store.rows_by_id(self.name, list(ids), ["id", "text", "metadata"])
        return [
            Document(id=i, page_content=t, metadata=json.loads(m or "{}"))
            for i, t, m in zip(
                arrow["id"].to_pylist(), arrow["text"].to_pylist(), arrow["metadata"].to_pylist(), strict=True
            )
        ]

    def delete(self, ids: list[str] | None = None, **_: Any) -> bool:
        from lancedb.expr import col

        if ids:
            with self.store.lock(self._logical()):
                self.store.table(self.name).delete(col("id").isin(list(ids)))
        return True

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, **kwargs: Any):
        raise NotImplementedError("create collections with `fintune index` or fintune.retrieval.index_corpus")


def _document(hit: Hit) -> Document:
    return Document(id=hit.id, page_content=hit.text, metadata={**hit.metadata, "score": hit.score})
