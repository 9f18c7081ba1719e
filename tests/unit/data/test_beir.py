import pytest

from fintune.data.beir import collect_beir, load_beir
from fintune.data.errors import DataError
from tests.conftest import write_jsonl


def make_beir(root, corpus, queries, qrels, split="dev"):
    write_jsonl(root / "corpus.jsonl", corpus)
    write_jsonl(root / "queries.jsonl", queries)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{s}" for q, d, s in qrels)]
    (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_good_folder_loads_judged_queries_only(tmp_path):
    root = make_beir(
        tmp_path,
        [{"_id": "d1", "title": "", "text": "one"}, {"_id": "d2", "title": "T", "text": "two"}],
        [{"_id": "q1", "text": "first?"}, {"_id": "q2", "text": "unjudged?"}],
        [("q1", "d2", 1)],
    )
    data = load_beir(root, "dev")
    assert data.queries == {"q1": "first?"} and data.qrels == {"q1": {"d2": 1.0}}
    assert data.doc_text("d2") == "T. two" and data.doc_text("d1") == "one"


def test_unknown_ids_duplicates_and_empty_texts_are_reported(tmp_path):
    root = make_beir(
        tmp_path,
        [{"_id": "d1", "text": "one"}, {"_id": "d1", "text": "dup"}, {"_id": "d3", "text": ""}],
        [{"_id": "q1", "text": "a?"}, {"_id": "q2", "text": ""}, {"_id": "q9", "text": ""}],
        [("q1", "d1", 1), ("q1", "dX", 1), ("qX", "d1", 1), ("q2", "d1", 1), ("q2", "d1", 1), ("q1", "d3", 1)],
    )
    messages = sorted(str(e).split("/")[-1] for e in collect_beir(root, "dev").errors)
    assert messages == [
        "corpus.jsonl:2: _id: duplicate id 'd1'",
        "corpus.jsonl:3: text: empty text",
        "dev.tsv:3: corpus-id: unknown corpus id 'dX'",
        "dev.tsv:4: query-id: unknown query id 'qX'",
        "queries.jsonl:2: text: empty text",  # once, though two qrels rows name it; q9 is unjudged
    ]
    with pytest.raises(DataError):
        load_beir(root, "dev")
    assert load_beir(root, "dev", skip_invalid=True).qrels == {"q1": {"d1": 1.0}}


def test_empty_texts_alone_are_skipped_with_a_warning(tmp_path, caplog):
    root = make_beir(
        tmp_path,
        [{"_id": "d1", "text": "one"}, {"_id": "d2", "text": " "}],
        [{"_id": "q1", "text": "a?"}, {"_id": "q2", "text": ""}],
        [("q1", "d1", 1), ("q2", "d1", 1), ("q1", "d2", 1)],
    )
    data = load_beir(root, "dev")
    assert data.qrels == {"q1": {"d1": 1.0}} and set(data.corpus) == {"d1"}
    assert "skipped 2 invalid record(s) (2x empty text)" in caplog.text


def test_missing_split_lists_the_available_ones(tmp_path):
    root = make_beir(tmp_path, [{"_id": "d1", "text": "x"}], [{"_id": "q1", "text": "y"}], [("q1", "d1", 1)])
    with pytest.raises(FileNotFoundError, match="have: dev"):
        load_beir(root, "test")
