"""One interface over the vector stores: collections of (id, text, vector, metadata) with cosine search."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from fintune.retrieval.catalog import Catalog, CollectionInfo, check_name

log = logging.getLogger(__name__)

MMR_LAMBDA = 0.5  # LangChain's default balance of relevance and diversity
SETUP_LOCK = "_setup"  # the lock around creating the catalog; collection names cannot start with "_"


@dataclass(frozen=True)
class Row:
    """One document ready to store."""

    id: str
    text: str
    vector: list[float]
    metadata: dict[str, Any]
    hash: str


@dataclass
class Hit:
    id: str
    score: float  # vector search: cosine; keyword search: the engine's text score; hybrid: the fused RRF score
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: list[float] | None = None
    # hybrid search only: each side's own score, None when that side did not return the document
    vector_score: float | None = None
    keyword_score: float | None = None
    rerank_score: float | None = None  # reranked hits only: the cross-encoder's P(this passage answers)


class Store(ABC):
    """A vector store holding fintune collections; `catalog` records their models and aliases."""

    kind: str
    catalog: Catalog

    @property
    @abstractmethod
    def display(self) -> str:
        """Where the store is, without secrets."""

    @abstractmethod
    def create_collection(self, info: CollectionInfo) -> None: ...

    @abstractmethod
    def drop_collection(self, name: str) -> None: ...

    @abstractmethod
    def hashes(self, name: str, ids: list[str]) -> dict[str, str]:
        """id -> content hash of the given ids that are stored (what a re-run may skip)."""

    @abstractmethod
    def upsert(self, name: str, rows: list[Row]) -> None:
        """Insert or replace `rows` by id, all or nothing."""

    @abstractmethod
    def count(self, name: str) -> int: ...

    @abstractmethod
    def build_index(self, name: str) -> str:
        """Create or refresh the approximate index; returns what was done, for the log."""

    @abstractmethod
    def candidates(
        self, name: str, vector: list[float], k: int, filter: dict[str, Any] | None, with_vectors: bool
    ) -> list[Hit]:
        """The k nearest documents by cosine, best first."""

    @abstractmethod
    def keyword_search(self, name: str, query: str, k: int, filter: dict[str, Any] | None) -> list[Hit]:
        """The k best documents for `query` by the database's own full-text search, best first.

        Terms are OR-ed (a question's words rarely all occur in its passage); `filter` applies as in
        `candidates`; Hit.score is the store's text relevance (BM25; HANA's SCORE())."""

    @abstractmethod
    def vectorstore(self, name: str, embeddings: Embeddings) -> VectorStore:
        """The collection as a LangChain vector store (retrievers, chains)."""

    def search(
        self,
        name: str,
        vector: list[float],
        k: int = 10,
        filter: dict[str, Any] | None = None,
        mmr: bool = False,
        fetch_k: int | None = None,
    ) -> list[Hit]:
        if not mmr:
            return self.candidates(name, vector, k, filter, with_vectors=False)
        pool = self.candidates(name, vector, fetch_k or max(4 * k, 20), filter, with_vectors=True)
        return mmr_select(vector, pool, k)

    def close(self) -> None:  # noqa: B027 - optional for stores without a connection
        pass

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold the inter-process write lock `key`: a logical collection name, or SETUP_LOCK.

        Writers of one collection take turns, so what one reads under the lock (stored hashes, the
        catalog) stays true until it has written. Re-entrant within a process; the lock of a writer that
        is killed is freed by the operating system or the database server.
        """
        held: set[str] = self.__dict__.setdefault("_held_locks", set())
        if key in held:
            yield
            return
        if key != SETUP_LOCK:
            check_name(key)  # it names a lock file or row
        if not self._acquire(key, wait=False):
            what = "the catalog" if key == SETUP_LOCK else f"collection {key!r}"
            log.info("another process is writing %s in %s; waiting for it", what, self.display)
            self._acquire(key, wait=True)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            self._release(key)

    @abstractmethod
    def _acquire(self, key: str, wait: bool) -> bool:
        """Take the lock `key`; without `wait`, return False at once when another process holds it."""

    @abstractmethod
    def _release(self, key: str) -> None: ...


def mmr_select(query: list[float], pool: list[Hit], k: int, lambda_mult: float = MMR_LAMBDA) -> list[Hit]:
    """Maximal marginal relevance over candidates that carry their vectors (LangChain's selection)."""
    if not pool:
        return []
    vectors = []
    for hit in pool:
        if hit.vector is None:
            raise ValueError(f"MMR candidate {hit.id!r} has no vector: fetch the candidates with_vectors=True")
        vectors.append(hit.vector)
    chosen = maximal_marginal_relevance(np.asarray(query, dtype=np.float32), vectors, lambda_mult=lambda_mult, k=k)
    return [pool[i] for i in chosen]


class VectorsGiven(Embeddings):
    """For LangChain stores fintune writes to with vectors it computed: they need an Embeddings object."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise RuntimeError("fintune passes vectors to this store; pass FinancialEmbeddings to embed text")

    def embed_query(self, text: str) -> list[float]:
        raise RuntimeError("fintune passes vectors to this store; pass FinancialEmbeddings to embed text")
