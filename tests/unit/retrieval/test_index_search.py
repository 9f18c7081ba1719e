"""Indexing and search on the embedded store: exact results, idempotent re-runs, resume, filters, blue/green."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from fintune.retrieval.catalog import StoreError
from fintune.retrieval.corpus import Corpus
from fintune.retrieval.embeddings import FinancialEmbeddings
from fintune.retrieval.index import index_corpus
from fintune.retrieval.search import open_collection
from fintune.retrieval.stores.embedded import EmbeddedStore

QUERY = "How much revenue did Company7 report?"


def test_search_returns_the_exact_cosine_neighbours(store, corpus, tiny_embeddings):
    index_corpus(store, "docs", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings, progress=False)
    hits = open_collection(store, "docs").search([QUERY], k=5)[0]
    docs = np.array(tiny_embeddings.embed_documents([d.text for d in corpus.docs]))
    query = np.array(tiny_embeddings.embed_query(QUERY))
    scores = docs @ query
    expected = [corpus.docs[i].id for i in np.argsort(-scores)[:5]]
    assert [h.id for h in hits] == expected
    assert [h.score for h in hits] == pytest.approx(sorted(scores, reverse=True)[:5], abs=1e-5)


def test_a_second_run_changes_nothing_and_a_changed_document_is_replaced(store, corpus, tiny_embeddings):
    model = tiny_embeddings.model_name
    first = index_corpus(store, "docs", corpus, model=model, embeddings=tiny_embeddings, progress=False)
    again = index_corpus(store, "docs", corpus, model=model, embeddings=tiny_embeddings, progress=False)
    assert (first.added, again.added, again.unchanged) == (40, 0, 40)
    edited = [replace(d, text="Totally new text about bonds.") if d.id == "d5" else d for d in corpus.docs]
    third = index_corpus(store, "docs", Corpus(corpus.source, edited), model=model, embeddings=tiny_embeddings)
    assert (third.added, third.updated, third.unchanged) == (0, 1, 39)
    assert store.count("docs_v1") == 40  # replaced in place, not duplicated
    hit = open_collection(store, "docs").search(["Totally new text about bonds."], k=1)[0][0]
    assert hit.id == "d5" and hit.text == "Totally new text about bonds."


class FailingEmbeddings(FinancialEmbeddings):
    """Dies after `calls` embedding rounds, as a killed indexing run would."""

    def __init__(self, model_name: str, calls: int):
        super().__init__(model_name)
        self.calls = calls

    def embed_documents(self, texts):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        return super().embed_documents(texts)


def test_an_interrupted_run_is_completed_by_the_next_one(store, corpus, tiny_bert_dir):
    model = str(tiny_bert_dir)
    with pytest.raises(KeyboardInterrupt):
        index_corpus(store, "docs", corpus, model=model, batch_size=8, embeddings=FailingEmbeddings(model, 2))
    assert store.count("docs_v1") == 16
    with pytest.raises(StoreError, match="still being built"):
        open_collection(store, "docs")  # the alias is only set once the corpus is complete
    resumed = index_corpus(store, "docs", corpus, model=model, batch_size=8, progress=False)
    assert (resumed.physical, resumed.added, resumed.unchanged) == ("docs_v1", 24, 16)
    assert store.count("docs_v1") == 40 and store.catalog.resolve("docs").status == "ready"


def test_concurrent_runs_store_each_id_once_and_report_it_added_once(corpus, tiny_embeddings, tmp_path):
    """Two runs at once, each with its own store object (its own locks, as two processes would have)."""
    barrier, results, errors = threading.Barrier(2), [], []

    def run() -> None:
        store = EmbeddedStore(tmp_path / "shared")
        try:
            barrier.wait()
            model = tiny_embeddings.model_name
            results.append(index_corpus(store, "docs", corpus, model, batch_size=4, embeddings=tiny_embeddings))
        except Exception as exc:  # collected: an assertion in a thread would be lost
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sorted((r.added + r.unchanged, r.updated) for r in results) == [(40, 0), (40, 0)]
    assert sum(r.added for r in results) == 40  # each document reported added by one run only
    store = EmbeddedStore(tmp_path / "shared")
    try:
        ids = store.table("docs_v1").to_arrow()["id"].to_pylist()
        assert sorted(ids) == sorted(d.id for d in corpus.docs)
        assert store.catalog.resolve("docs").documents == 40
    finally:
        store.close()


def test_filters_keep_only_matching_documents_and_unknown_fields_are_refused(store, corpus, tiny_embeddings):
    index_corpus(store, "docs", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings)
    searcher = open_collection(store, "docs")
    hits = searcher.search([QUERY], k=10, filter={"sector": "energy"})[0]
    assert len(hits) == 10 and {h.metadata["sector"] for h in hits} == {"energy"}
    assert searcher.search([QUERY], k=5, filter={"sector": "energy", "year": 2023})[0]
    with pytest.raises(StoreError, match="cannot filter on 'country'"):
        searcher.search([QUERY], k=5, filter={"country": "US"})
    injected = searcher.search([QUERY], k=5, filter={"sector": "energy' OR '1'='1"})[0]
    assert injected == []  # the value is a literal, never SQL


def test_mmr_keeps_the_best_hit_and_returns_distinct_documents(store, corpus, tiny_embeddings):
    index_corpus(store, "docs", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings)
    searcher = open_collection(store, "docs")
    plain = searcher.search([QUERY], k=5)[0]
    diverse = searcher.search([QUERY], k=5, mmr=True)[0]
    assert diverse[0].id == plain[0].id and len({h.id for h in diverse}) == 5


def test_a_new_model_needs_reembed_then_switches_the_alias_when_complete(
    store, corpus, tiny_bert_dir, tiny_bert_48_dir
):
    old, new = str(tiny_bert_dir), str(tiny_bert_48_dir)
    index_corpus(store, "docs", corpus, model=old, progress=False)
    with pytest.raises(StoreError, match="Pass --reembed"):
        index_corpus(store, "docs", corpus, model=new, progress=False)
    result = index_corpus(store, "docs", corpus, model=new, reembed=True, progress=False)
    assert (result.physical, result.switched_from) == ("docs_v2", "docs_v1")
    live = store.catalog.resolve("docs")
    assert (live.name, live.dimension, store.catalog.get("docs_v1").status) == ("docs_v2", 48, "retired")
    assert open_collection(store, "docs").embeddings.model_name == new  # the collection's own model by default
    with pytest.raises(StoreError, match="holds 48-dim vectors"):
        open_collection(store, "docs", model=old)
    dropped = index_corpus(store, "docs", corpus, model=old, reembed=True, drop_old=True, progress=False)
    assert dropped.physical == "docs_v3" and store.catalog.get("docs_v2") is None


def test_same_dimension_but_another_model_is_refused(store, corpus, tiny_bert_dir, tmp_path):
    from tests.unit.conftest import build_tiny_bert

    other = build_tiny_bert(tmp_path / "other", hidden_size=32, seed=5)
    index_corpus(store, "docs", corpus, model=str(tiny_bert_dir), progress=False)
    with pytest.raises(StoreError, match="two different models"):
        open_collection(store, "docs", model=str(other))


def test_an_onnx_export_of_the_collection_model_may_search_it(store, corpus, tiny_bert_dir, tmp_path):
    from fintune.embed.export import export_onnx

    index_corpus(store, "docs", corpus, model=str(tiny_bert_dir), progress=False)
    export_onnx(str(tiny_bert_dir), tmp_path / "onnx")
    torch_hits = open_collection(store, "docs").search([QUERY], k=5)[0]
    onnx_hits = open_collection(store, "docs", model=str(tmp_path / "onnx")).search([QUERY], k=5)[0]
    assert [h.id for h in onnx_hits] == [h.id for h in torch_hits]


def test_the_collection_is_a_langchain_vector_store(store, corpus, tiny_embeddings):
    index_corpus(store, "docs", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings)
    info = store.catalog.resolve("docs")
    vs = store.vectorstore(info.name, tiny_embeddings)
    docs = vs.as_retriever(search_kwargs={"k": 3}).invoke(QUERY)
    assert len(docs) == 3 and docs[0].id == open_collection(store, "docs").search([QUERY], k=1)[0][0].id
    assert {d.id for d in vs.get_by_ids(["d1", "d2"])} == {"d1", "d2"}


def test_bad_collection_names_are_refused(store, corpus, tiny_embeddings):
    with pytest.raises(ValueError, match="collection name"):
        index_corpus(store, "drop table; --", corpus, model=tiny_embeddings.model_name, embeddings=tiny_embeddings)
