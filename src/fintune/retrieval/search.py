"""Search a collection with the model that built it; refuse a model whose vectors would not compare."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fintune.config.saved import read_export
from fintune.models.resolve import model_key
from fintune.retrieval.catalog import CollectionInfo, StoreError
from fintune.retrieval.embeddings import FinancialEmbeddings
from fintune.retrieval.stores.base import Hit, Store


@dataclass
class Searcher:
    store: Store
    info: CollectionInfo
    embeddings: FinancialEmbeddings

    def search(
        self, queries: list[str], k: int = 10, filter: dict[str, Any] | None = None, mmr: bool = False
    ) -> list[list[Hit]]:
        vectors = self.embeddings.embed_queries(queries)
        return [self.store.search(self.info.name, v, k, filter, mmr) for v in vectors]


def open_collection(store: Store, collection: str, model: str | None = None) -> Searcher:
    info = store.catalog.resolve(collection)
    if info.status == "building":
        raise StoreError(f"{info.name} is still being built (rerun its `fintune index` to complete it)")
    if model is None:
        return Searcher(store, info, FinancialEmbeddings(info.model, add_financial_prefix=info.prefix))
    embeddings = FinancialEmbeddings(model, add_financial_prefix=info.prefix)
    if embeddings.dimension != info.dimension:
        raise StoreError(
            f"collection {collection!r} holds {info.dimension}-dim vectors from {info.model!r}; "
            f"{model!r} makes {embeddings.dimension}-dim vectors. Search without --model to use the collection's model"
        )
    if not same_model(model, info.model):
        raise StoreError(
            f"collection {collection!r} was built with {info.model!r}; scores from {model!r} would compare vectors "
            "of two different models. Search without --model, or re-index with `fintune index --reembed`"
        )
    return Searcher(store, info, embeddings)


def same_model(model: str, recorded: str) -> bool:
    """The recorded model itself, or an ONNX export of it (its vectors match to quantisation noise)."""
    key = model_key(model)
    if key == recorded:
        return True
    export = read_export(key)
    return export is not None and model_key(export.source_model) == recorded
