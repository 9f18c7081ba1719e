"""Index a corpus into a store: batched, idempotent upserts by id, resumable, blue/green on model change.

A re-run skips documents whose id and content hash are already stored, so an interrupted run is
completed by running it again and nothing is duplicated. The alias (the collection name users search)
moves to a version only once that version holds the whole corpus.

Runs writing one collection at once take turns under the store's lock on it: choosing the version, each
batch's read-skip-upsert (so each document is reported added by exactly one run) and the final catalog
update, whose document count is the store's row count.
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
) -> CollectionInfo:
    """The physical collection to write: the live one, an interrupted build with this model, or a new one."""
    check_name(logical)
    live = store.catalog.alias(logical)
    versions = store.catalog.versions(logical)
    current = store.catalog.get(live) if live else None
    if current is not None and current.model == model and current.prefix == prefix:
        return current
    building = [v for v in versions if v.status == "building" and v.model == model and v.prefix == prefix]
    if building:  # an interrupted run with this model, or one still running: continue it
        return building[-1]
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
    return info


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
    check_name(collection)
    embeddings = embeddings or FinancialEmbeddings(model, add_financial_prefix=add_financial_prefix)
    with store.lock(collection):  # concurrent runs agree on one version to fill
        info = target_version(
            store, collection, key, embeddings.dimension, add_financial_prefix, corpus.metadata_fields, reembed
        )
    if info.dimension != embeddings.dimension:
        raise StoreError(f"{info.name} holds {info.dimension}-dim vectors; {model} makes {embeddings.dimension}")
    result = IndexResult(collection, info.name, key, skipped_invalid=len(corpus.errors))
    bar = tqdm(total=len(corpus.docs), desc=f"index {info.name}", unit="doc", disable=not progress)
    for begin in range(0, len(corpus.docs), batch_size):
        batch = corpus.docs[begin : begin + batch_size]
        # Read, embed and upsert in one turn: no other run can store these ids in between. Embedding
        # inside the lock also means concurrent runs share the work instead of each embedding everything.
        with store.lock(collection):
            _index_batch(store, info.name, embeddings, batch, result)
        bar.update(len(batch))
    bar.close()
    with store.lock(collection):
        result.index_note = store.build_index(info.name)
        store.catalog.mark(info.name, "ready", store.count(info.name))  # the rows stored, whoever wrote them
        _go_live(store, collection, info.name, drop_old, result)
    result.seconds = time.perf_counter() - start
    return result


def _index_batch(
    store: Store, name: str, embeddings: FinancialEmbeddings, batch: list[CorpusDoc], result: IndexResult
) -> None:
    """Upsert the documents of `batch` that are new or changed; count what was added, updated, unchanged."""
    stored = store.hashes(name, [d.id for d in batch])
    todo = [d for d in batch if stored.get(d.id) != d.content_hash]
    result.unchanged += len(batch) - len(todo)
    result.updated += sum(d.id in stored for d in todo)
    result.added += sum(d.id not in stored for d in todo)
    if todo:
        store.upsert(name, _rows(embeddings, todo))


def _go_live(store: Store, logical: str, name: str, drop_old: bool, result: IndexResult) -> None:
    """Point the alias at the finished version and retire the one it replaces.

    The live version is read now, under the lock: a concurrent run may already have switched it.
    """
    live = store.catalog.alias(logical)
    if live == name:
        return
    store.catalog.point(logical, name)
    result.switched_from = live
    if not live:
        return
    store.catalog.mark(live, "retired")
    if drop_old:
        store.drop_collection(live)
        store.catalog.remove(live)
        result.notes.append(f"dropped the previous version {live}")
    else:
        result.notes.append(f"kept the previous version {live} (retired); --drop-old removes it")


def _rows(embeddings: FinancialEmbeddings, docs: list[CorpusDoc]) -> list[Row]:
    vectors = embeddings.embed_documents([d.text for d in docs])
    return [Row(d.id, d.text, v, d.metadata, d.content_hash) for d, v in zip(docs, vectors, strict=True)]
