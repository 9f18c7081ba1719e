"""A tiny random-initialised BERT with MiniLM's tokenizer: real mechanics in milliseconds."""

from __future__ import annotations

import pytest
from sentence_transformers import SentenceTransformer


@pytest.fixture
def tiny_model(tiny_bert_dir):
    return SentenceTransformer(str(tiny_bert_dir), device="cpu")


@pytest.fixture
def tiny_beir(tmp_path):
    """A synthetic BEIR folder: 24 passages about 24 companies, 16 train and 8 dev questions."""
    from tests.conftest import write_jsonl

    companies = [f"Company{i}" for i in range(24)]
    corpus = [
        {"_id": f"d{i}", "title": "", "text": f"{c} reported revenue of {i + 1} billion dollars in 2023."}
        for i, c in enumerate(companies)
    ]
    queries = [{"_id": f"q{i}", "text": f"What revenue did {c} report?"} for i, c in enumerate(companies)]
    write_jsonl(tmp_path / "corpus.jsonl", corpus)
    write_jsonl(tmp_path / "queries.jsonl", queries)
    (tmp_path / "qrels").mkdir()
    for split, ids in (("train", range(16)), ("dev", range(16, 24))):
        lines = ["query-id\tcorpus-id\tscore", *(f"q{i}\td{i}\t1" for i in ids)]
        (tmp_path / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return tmp_path
