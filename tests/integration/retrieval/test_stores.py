"""The real MiniLM over a slice of the shared 10-K corpus, in the embedded store and a real PostgreSQL+pgvector.

Both stores must reproduce exact retrieval (the evaluation's brute-force ranking), and every fault the
issue lists must give a clear error and leave the store consistent.
"""

from __future__ import annotations

import pytest

from fintune.data.beir import load_beir
from fintune.embed.evaluate import evaluate_retrieval
from fintune.embed.model import load_embedder
from fintune.metrics.retrieval import mean_metrics, per_query_metrics
from fintune.retrieval.catalog import StoreError
from fintune.retrieval.corpus import read_corpus
from fintune.retrieval.embeddings import FinancialEmbeddings
from fintune.retrieval.index import index_corpus
from fintune.retrieval.search import open_collection
from fintune.retrieval.stores import open_store
from tests import pg_local

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm():
    return FinancialEmbeddings("minilm")


@pytest.fixture(scope="module")
def exact(beir_slice):
    data = load_beir(beir_slice, "dev")
    return data, evaluate_retrieval(load_embedder("minilm"), data)


def _store_metrics(store, data):
    searcher = open_collection(store, "tenk")
    results = searcher.search(list(data.queries.values()), k=10)
    rankings = {q: [h.id for h in hits] for q, hits in zip(data.queries, results, strict=True)}
    return rankings, mean_metrics(per_query_metrics(rankings, data.qrels))


@pytest.mark.parametrize("kind", ["embedded", "pgvector"])
def test_store_reproduces_exact_retrieval_on_real_passages(kind, beir_slice, exact, minilm, tmp_path, request):
    url = str(tmp_path / "store") if kind == "embedded" else request.getfixturevalue("pg_database")
    data, reference = exact
    store = open_store(url)
    try:
        result = index_corpus(store, "tenk", read_corpus(beir_slice), model="minilm", embeddings=minilm)
        assert result.added == len(data.corpus)
        rankings, metrics = _store_metrics(store, data)
    finally:
        store.close()
    same_top10 = sum(rankings[q] == reference.rankings[q][:10] for q in data.queries) / len(data.queries)
    assert same_top10 >= 0.95
    assert metrics["ndcg@10"] == pytest.approx(reference.metrics["ndcg@10"], abs=0.01)


def test_pgvector_resumes_a_killed_run_without_duplicates(pg_database, beir_slice, minilm):
    class Dies(FinancialEmbeddings):
        calls = 1

        def embed_documents(self, texts):
            if self.calls == 0:
                raise KeyboardInterrupt
            self.calls -= 1
            return minilm.embed_documents(texts)

    corpus = read_corpus(beir_slice)
    store = open_store(pg_database)
    try:
        with pytest.raises(KeyboardInterrupt):
            index_corpus(store, "tenk", corpus, model="minilm", batch_size=64, embeddings=Dies("minilm"))
        assert store.count("tenk_v1") == 64
        resumed = index_corpus(store, "tenk", corpus, model="minilm", batch_size=64, embeddings=minilm)
        assert (resumed.unchanged, resumed.added) == (64, len(corpus.docs) - 64)
        assert store.count("tenk_v1") == len(corpus.docs)
        hits = open_collection(store, "tenk").search(
            ["total revenue"], k=5, filter={"ticker": corpus.docs[0].metadata["ticker"]}
        )[0]
        assert hits and {h.metadata["ticker"] for h in hits} == {corpus.docs[0].metadata["ticker"]}
    finally:
        store.close()


def test_pgvector_wrong_password_and_missing_extension_are_explained(pg_url, pg_database):
    wrong = pg_database.replace(pg_database.split("@")[0].rsplit(":", 1)[1], "not-the-password", 1)
    with pytest.raises(StoreError, match="wrong password") as err:
        open_store(wrong)
    assert "not-the-password" not in str(err.value)
    # a role without the right to create extensions, in a database where pgvector is not enabled
    pg_local.psql(pg_url, "DROP ROLE IF EXISTS analyst")
    pg_local.psql(pg_url, "CREATE ROLE analyst LOGIN PASSWORD 'analyst-pw'")
    host = pg_url.split("@")[1].rsplit("/", 1)[0]
    db = pg_database.rsplit("/", 1)[1]
    pg_local.psql(pg_url, f'GRANT CONNECT ON DATABASE "{db}" TO analyst')
    with pytest.raises(StoreError, match="pgvector extension is not enabled"):
        open_store(f"postgresql://analyst:analyst-pw@{host}/{db}")
    pg_local.psql(pg_url, f'REVOKE ALL ON DATABASE "{db}" FROM analyst')
    pg_local.psql(pg_url, "DROP ROLE analyst")
