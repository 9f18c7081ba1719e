"""SAP HANA Cloud for real: runs whenever HANA_HOST, HANA_USER and HANA_PASSWORD are set (no server here)."""

from __future__ import annotations

import uuid

import pytest

from fintune.retrieval.corpus import read_corpus
from fintune.retrieval.index import index_corpus
from fintune.retrieval.search import open_collection
from fintune.retrieval.stores import open_store
from fintune.retrieval.stores.hana import hana_configured

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hana_configured(), reason="set HANA_HOST, HANA_USER, HANA_PASSWORD to run against HANA"),
]


def test_hana_index_search_upsert_and_filter(beir_slice):
    corpus = read_corpus(beir_slice)
    corpus.docs = corpus.docs[:200]
    name = f"fintune_test_{uuid.uuid4().hex[:8]}"
    store = open_store("hana")
    try:
        first = index_corpus(store, name, corpus, model="minilm")
        again = index_corpus(store, name, corpus, model="minilm")
        assert (first.added, again.unchanged) == (200, 200)
        info = store.catalog.resolve(name)
        assert store.count(info.name) == 200
        doc = corpus.docs[0]
        hits = open_collection(store, name).search([doc.text], k=3, filter={"ticker": doc.metadata["ticker"]})[0]
        assert hits[0].id == doc.id and hits[0].score > 0.99
    finally:
        for version in store.catalog.versions(name):
            store.drop_collection(version.name)
            store.catalog.remove(version.name)
        store.close()
