"""Search a collection with the model that built it; refuse a model whose vectors would not compare."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fintune.config.saved import read_export
from fintune.errors import UsageError
from fintune.models.resolve import model_key
from fintune.retrieval.catalog import CollectionInfo, StoreError
from fintune.retrieval.embeddings import FinancialEmbeddings
from fintune.retrieval.hybrid import HybridSettings, rrf
from fintune.retrieval.stores.base import Hit, Store


@dataclass
class Searcher:
    store: Store
    info: CollectionInfo
    embeddings: FinancialEmbeddings

    def search(
        self,
        queries: list[str],
        k: int = 10,
        filter: dict[str, Any] | None = None,
        mmr: bool = False,
        hybrid: HybridSettings | None = None,
    ) -> list[list[Hit]]:
        """The top k per query: by cosine, or with `hybrid` fused with the store's keyword search."""
        if hybrid is not None and mmr:
            raise UsageError("choose MMR or hybrid search, not both")
        if hybrid is not None and hybrid.vector_weight == 0:  # keyword only: no query vectors needed
            return [self._hybrid(q, None, k, filter, hybrid) for q in queries]
        return self.search_vectors(queries, self.embeddings.embed_queries(queries), k, filter, mmr, hybrid)

    def search_vectors(
        self,
        queries: list[str],
        vectors: list[list[float]],
        k: int = 10,
        filter: dict[str, Any] | None = None,
        mmr: bool = False,
        hybrid: HybridSettings | None = None,
    ) -> list[list[Hit]]:
        """`search` with the query vectors already made (the serving API batches them across requests)."""
        if hybrid is None:
            return [self.store.search(self.info.name, v, k, filter, mmr) for v in vectors]
        return [self._hybrid(q, v, k, filter, hybrid) for q, v in zip(queries, vectors, strict=True)]

    def _hybrid(
        self, query: str, vector: list[float] | None, k: int, filter: dict[str, Any] | None, settings: HybridSettings
    ) -> list[Hit]:
        """Fused hits: score is the RRF score; vector_score and keyword_score keep each side's own score.

        The cosine stays in vector_score because thresholds such as ask's min_score are cosines: a fused
        score (about 1/61 at best) is on no scale a cosine threshold can be compared with."""
        depth = settings.depth(k)
        dense = self.store.candidates(self.info.name, vector, depth, filter, False) if vector is not None else []
        sparse = self.store.keyword_search(self.info.name, query, depth, filter) if settings.keyword_weight else []
        by_id = {h.id: h for h in sparse} | {h.id: h for h in dense}
        cosine = {h.id: h.score for h in dense}
        text_score = {h.id: h.score for h in sparse}
        fused = rrf(
            [[h.id for h in dense], [h.id for h in sparse]],
            [settings.vector_weight, settings.keyword_weight],
            settings.rrf_k,
        )
        return [
            replace(by_id[i], score=score, vector_score=cosine.get(i), keyword_score=text_score.get(i))
            for i, score in fused[:k]
        ]


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
