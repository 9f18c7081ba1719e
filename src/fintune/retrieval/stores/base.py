"""One interface over the vector stores: collections of (id, text, vector, metadata) with cosine search."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from fintune.retrieval.catalog import Catalog, CollectionInfo

MMR_LAMBDA = 0.5  # LangChain's default balance of relevance and diversity


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
    score: float  # cosine similarity, whatever the store reports natively
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    vector: list[float] | None = None


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


def mmr_select(query: list[float], pool: list[Hit], k: int, lambda_mult: float = MMR_LAMBDA) -> list[Hit]:
    """Maximal marginal relevance over candidates that carry their vectors (LangChain's selection)."""
    if not pool:
        return []
    chosen = maximal_marginal_relevance(
        np.asarray(query, dtype=np.float32), [h.vector for h in pool], lambda_mult=lambda_mult, k=k
    )
    return [pool[i] for i in chosen]


class VectorsGiven(Embeddings):
    """For LangChain stores fintune writes to with vectors it computed: they need an Embeddings object."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise RuntimeError("fintune passes vectors to this store; pass FinancialEmbeddings to embed text")

    def embed_query(self, text: str) -> list[float]:
        raise RuntimeError("fintune passes vectors to this store; pass FinancialEmbeddings to embed text")
