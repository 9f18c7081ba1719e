"""Index a corpus into a store: batched, idempotent upserts by id, resumable, blue/green on model change.

A re-run skips documents whose id and content hash are already stored, so an interrupted run is
completed by running it again and nothing is duplicated. The alias (the collection name users search)
moves to a version only once that version holds the whole corpus.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from fintune.models.resolve import model_key
from fintune.retrieval.catalog import CollectionInfo, StoreError, check_name, now
from fintune.retrieval.corpus import Corpus, CorpusDoc
from fintune.retrieval.embeddings import FinancialEmbeddings
from fintune.retrieval.stores.base import Row, Store

log = logging.getLogger(__name__)

BATCH = 256  # documents per embed + upsert round: one atomic commit each


@dataclass
class IndexResult:
    collection: str  # the alias users search
    physical: str  # the version that was written
    model: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_invalid: int = 0
    seconds: float = 0.0
    index_note: str = ""
    switched_from: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def docs_per_s(self) -> float:
        return (self.added + self.updated) / self.seconds if self.seconds else 0.0


def target_version(
    store: Store, logical: str, model: str, dimension: int, prefix: bool, fields: list[str], reembed: bool
) -> tuple[CollectionInfo, str | None]:
    """The physical collection to write, and the one the alias points at now (if any)."""
    check_name(logical)
    live = store.catalog.alias(logical)
    versions = store.catalog.versions(logical)
    current = store.catalog.get(live) if live else None
    if current is not None and current.model == model and current.prefix == prefix:
        return current, live
    building = [v for v in versions if v.status == "building" and v.model == model and v.prefix == prefix]
    if building:  # an interrupted run with this model: resume it
        return building[-1], live
    if current is not None and not reembed:
        raise StoreError(
            f"collection {logical!r} was built with model {current.model!r} ({current.dimension} dims); "
            f"indexing it with {model!r} would mix vectors of two models. Pass --reembed to build a new "
            "version with this model and switch to it when complete (searches keep working meanwhile)"
        )
    version = max((v.version for v in versions), default=0) + 1
    info = CollectionInfo(
        name=f"{logical}_v{version}",
        logical=logical,
        version=version,
        model=model,
        dimension=dimension,
        prefix=prefix,
        status="building",
        created=now(),
        documents=0,
        metadata_fields=tuple(f for f in fields if f.isidentifier()),
    )
    store.create_collection(info)
    store.catalog.add(info)
    return info, live


def index_corpus(
    store: Store,
    collection: str,
    corpus: Corpus,
    model: str = "minilm",
    add_financial_prefix: bool = False,
    reembed: bool = False,
    drop_old: bool = False,
    batch_size: int = BATCH,
    embeddings: FinancialEmbeddings | None = None,
    progress: bool = True,
) -> IndexResult:
    start = time.perf_counter()
    key = model_key(model)
    embeddings = embeddings or FinancialEmbeddings(model, add_financial_prefix=add_financial_prefix)
    info, live = target_version(
        store, collection, key, embeddings.dimension, add_financial_prefix, corpus.metadata_fields, reembed
    )
    if info.dimension != embeddings.dimension:
        raise StoreError(f"{info.name} holds {info.dimension}-dim vectors; {model} makes {embeddings.dimension}")
    result = IndexResult(collection, info.name, key, skipped_invalid=len(corpus.errors))
    bar = tqdm(total=len(corpus.docs), desc=f"index {info.name}", unit="doc", disable=not progress)
    for begin in range(0, len(corpus.docs), batch_size):
        batch = corpus.docs[begin : begin + batch_size]
        stored = store.hashes(info.name, [d.id for d in batch])
        todo = [d for d in batch if stored.get(d.id) != d.content_hash]
        result.unchanged += len(batch) - len(todo)
        result.updated += sum(d.id in stored for d in todo)
        result.added += sum(d.id not in stored for d in todo)
        if todo:
            store.upsert(info.name, _rows(embeddings, todo))
        bar.update(len(batch))
    bar.close()
    result.index_note = store.build_index(info.name)
    store.catalog.mark(info.name, "ready", store.count(info.name))
    if live != info.name:
        store.catalog.point(collection, info.name)
        result.switched_from = live
        if live:
            store.catalog.mark(live, "retired")
            if drop_old:
                store.drop_collection(live)
                store.catalog.remove(live)
                result.notes.append(f"dropped the previous version {live}")
            else:
                result.notes.append(f"kept the previous version {live} (retired); --drop-old removes it")
    result.seconds = time.perf_counter() - start
    return result


def _rows(embeddings: FinancialEmbeddings, docs: list[CorpusDoc]) -> list[Row]:
    vectors = embeddings.embed_documents([d.text for d in docs])
    return [Row(d.id, d.text, v, d.metadata, d.content_hash) for d, v in zip(docs, vectors, strict=True)]
