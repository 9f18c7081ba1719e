"""`fintune index / search / collections` end to end on the embedded store with the tiny model."""

from __future__ import annotations

import json

from fintune.cli.main import main
from tests.conftest import write_jsonl


def _index(corpus_file, store, model, *extra):
    return main(["index", "--model", str(model), "--corpus", str(corpus_file), "--store", str(store),
                 "--collection", "docs", *extra])  # fmt: skip


def test_index_then_search_prints_json_results(corpus_file, tiny_bert_dir, tmp_path, capsys):
    store = tmp_path / "store"
    assert _index(corpus_file, store, tiny_bert_dir) == 0
    assert "40 added" in capsys.readouterr().out
    assert _index(corpus_file, store, tiny_bert_dir) == 0
    assert "0 added, 0 updated, 40 unchanged" in capsys.readouterr().out
    args = ["search", "--store", str(store), "--collection", "docs", "revenue of Company3", "-k", "3", "--json"]
    assert main([*args, "--filter", "sector=banks"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["results"]) == 3 and all(r["metadata"]["sector"] == "banks" for r in out["results"])


def test_batch_search_writes_one_jsonl_line_per_query(corpus_file, tiny_bert_dir, tmp_path, capsys):
    store = tmp_path / "store"
    _index(corpus_file, store, tiny_bert_dir)
    queries = write_jsonl(
        tmp_path / "q.jsonl", [{"_id": "q1", "text": "Company1 revenue"}, {"_id": "q2", "text": "stores"}]
    )
    out = tmp_path / "results.jsonl"
    args = ["search", "--store", str(store), "--collection", "docs", "--queries", str(queries), "-k", "4"]
    assert main([*args, "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["query_id"] for r in rows] == ["q1", "q2"]
    assert all(len(r["results"]) == 4 and set(r["results"][0]) == {"id", "score"} for r in rows)
    scores = [x["score"] for x in rows[0]["results"]]
    assert scores == sorted(scores, reverse=True)


def test_bad_input_gives_one_clear_line(corpus_file, tiny_bert_dir, tiny_bert_48_dir, tmp_path, capsys):
    store = tmp_path / "store"
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"_id": "a", "text": "x"}, {"_id": "a", "text": "y"}])
    assert _index(bad, store, tiny_bert_dir) == 2
    assert f"{bad}:2: _id: duplicate id 'a'" in capsys.readouterr().err
    _index(corpus_file, store, tiny_bert_dir)
    capsys.readouterr()
    search = ["search", "--store", str(store), "--collection", "docs", "revenue"]
    assert main([*search, "--model", str(tiny_bert_48_dir)]) == 2
    assert "holds 32-dim vectors" in capsys.readouterr().err
    assert main(["search", "--store", str(store), "--collection", "nope", "x"]) == 2
    assert "no collection 'nope'" in capsys.readouterr().err
    assert main([*search, "--filter", "sector"]) == 2
    assert "expected key=value" in capsys.readouterr().err


def test_collections_lists_versions_and_the_live_one(corpus_file, tiny_bert_dir, tiny_bert_48_dir, tmp_path, capsys):
    store = tmp_path / "store"
    _index(corpus_file, store, tiny_bert_dir)
    assert _index(corpus_file, store, tiny_bert_48_dir, "--reembed") == 0
    assert "alias docs moved from docs_v1 to docs_v2" in capsys.readouterr().out
    assert main(["collections", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "docs_v1" in out and "retired" in out and "docs_v2" in out and "yes" in out


def test_unreachable_postgres_is_one_clear_line(capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://u:secret@127.0.0.1:{port}/db"
    assert main(["search", "--store", url, "--collection", "docs", "x"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach PostgreSQL at 127.0.0.1:{port}" in err and "secret" not in err
