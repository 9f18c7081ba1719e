"""A small real corpus and the embedded store, with the tiny random BERT as the encoder."""

from __future__ import annotations

import pytest

from fintune.retrieval.corpus import read_corpus
from fintune.retrieval.embeddings import FinancialEmbeddings
from fintune.retrieval.stores.embedded import EmbeddedStore
from tests.conftest import write_jsonl

SECTORS = ("banks", "energy", "retail")


def corpus_rows(n: int = 40) -> list[dict]:
    return [
        {
            "_id": f"d{i}",
            "title": f"Annual report {i}",
            "text": f"Company{i} reported revenue of {i + 1} billion dollars and {i % 7} new stores in 2023.",
            "sector": SECTORS[i % 3],
            "year": 2023,
        }
        for i in range(n)
    ]


@pytest.fixture
def corpus_file(tmp_path):
    return write_jsonl(tmp_path / "corpus.jsonl", corpus_rows())


@pytest.fixture
def corpus(corpus_file):
    return read_corpus(corpus_file)


@pytest.fixture
def store(tmp_path):
    s = EmbeddedStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
def tiny_embeddings(tiny_bert_dir):
    return FinancialEmbeddings(str(tiny_bert_dir))
