"""The app served on a free port for gradio_client, and a tiny embedded store to search."""

from __future__ import annotations

import socket

import pytest

from fintune.retrieval.corpus import read_corpus
from fintune.retrieval.embeddings import FinancialEmbeddings
from fintune.retrieval.index import index_corpus
from fintune.retrieval.stores.embedded import EmbeddedStore
from tests.conftest import write_jsonl
from tests.unit.retrieval.conftest import corpus_rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory, monkeypatch_module):
    """The whole app, launched in this process (so tests can look into its job registry)."""
    monkeypatch_module.setenv("FINTUNE_HOME", str(tmp_path_factory.mktemp("home")))
    from fintune.ui.app import build_app

    demo = build_app()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, show_error=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, tiny_bert_dir, tiny_bert_48_dir) -> str:
    """A store folder with 40 company passages embedded by the tiny BERT (`docs`) and a 48-dim one (`docs48`)."""
    root = tmp_path_factory.mktemp("ui_store")
    corpus = read_corpus(write_jsonl(root / "corpus.jsonl", corpus_rows()))
    store = EmbeddedStore(root / "store")
    embeddings = FinancialEmbeddings(str(tiny_bert_dir))
    index_corpus(store, "docs", corpus, model=str(tiny_bert_dir), embeddings=embeddings, progress=False)
    other = FinancialEmbeddings(str(tiny_bert_48_dir))  # a second model over the same corpus: "tuned"
    index_corpus(store, "docs48", corpus, model=str(tiny_bert_48_dir), embeddings=other, progress=False)
    store.close()
    return str(root / "store")


def tiny_beir_folder(folder):
    """16 train and 8 dev questions about 24 companies (two batches of 8 per epoch)."""
    companies = [f"Company{i}" for i in range(24)]
    docs = [
        {"_id": f"d{i}", "text": f"{c} reported revenue of {i + 1} billion dollars."} for i, c in enumerate(companies)
    ]
    write_jsonl(folder / "corpus.jsonl", docs)
    write_jsonl(
        folder / "queries.jsonl", [{"_id": f"q{i}", "text": f"What did {c} report?"} for i, c in enumerate(companies)]
    )
    (folder / "qrels").mkdir()
    for split, ids in (("train", range(16)), ("dev", range(16, 24))):
        lines = ["query-id\tcorpus-id\tscore", *(f"q{i}\td{i}\t1" for i in ids)]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder
