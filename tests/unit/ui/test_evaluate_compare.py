"""Evaluate tab: `embed compare` from the page or its report, and the queries that moved up and down."""

from __future__ import annotations

import json

import pytest

from fintune.errors import UsageError
from fintune.ui.evaluate import MOVED_COLUMNS, load_comparison, run_embed_compare
from tests.unit.ui.conftest import tiny_beir_folder


def _first_relevant_ranks(folder: str, queries: list[str], docs: list[str]) -> list[int]:
    """Rank of passage i for query i by cosine, counted by hand: 1 + passages scoring strictly higher."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(folder, device="cpu")
    scores = model.encode(queries, normalize_embeddings=True) @ model.encode(docs, normalize_embeddings=True).T
    return [1 + int((scores[j] > scores[j, i]).sum()) for j, i in enumerate(range(16, 24))]


def test_the_queries_that_moved_most_are_listed_with_both_ranks(tmp_path, tiny_bert_dir, tiny_bert_48_dir) -> None:
    beir = tiny_beir_folder(tmp_path / "beir")
    docs = [json.loads(line)["text"] for line in (beir / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line)["text"] for line in (beir / "queries.jsonl").read_text().splitlines()][16:24]
    base = _first_relevant_ranks(str(tiny_bert_dir), queries, docs)
    tuned = _first_relevant_ranks(str(tiny_bert_48_dir), queries, docs)
    delta = {q: t - b for q, b, t in zip(queries, base, tuned, strict=True)}
    up = sorted((q for q in queries if delta[q] < 0), key=delta.__getitem__)[:2]
    down = sorted((q for q in queries if delta[q] > 0), key=delta.__getitem__, reverse=True)[:2]
    assert up or down, "the two random models rank the dev queries alike: pick other seeds"

    metrics, moved = run_embed_compare(str(tiny_bert_dir), str(tiny_bert_48_dir), str(beir), "dev", 2)
    assert list(moved.columns) == MOVED_COLUMNS
    assert moved["query"].tolist() == up + down
    assert moved["direction"].tolist() == ["up"] * len(up) + ["down"] * len(down)
    rank = {q: (b, t) for q, b, t in zip(queries, base, tuned, strict=True)}
    for row in moved.to_dict("records"):
        assert (row["base rank"], row["tuned rank"]) == rank[row["query"]]
        assert row["delta"] == delta[row["query"]]
    assert {"base: " + str(tiny_bert_dir), "tuned: " + str(tiny_bert_48_dir)} == set(metrics["model"])

    # the CLI's report, loaded on the page, shows the same queries and metrics
    from fintune.cli.main import main

    report = tmp_path / "report.md"
    argv = ["embed", "compare", "--base", str(tiny_bert_dir), "--tuned", str(tiny_bert_48_dir), "--data", str(beir)]
    assert main([*argv, "--report", str(report), "--examples", "2"]) == 0
    loaded_metrics, loaded = load_comparison(str(report.with_suffix(".json")))
    assert loaded.to_dict("records") == moved.to_dict("records")
    page = metrics.set_index(["metric", "model"])["value"]
    cli = loaded_metrics.set_index(["metric", "model"])["value"]
    shared = sorted(set(cli.index))
    assert shared and {k: page[k] for k in shared} == pytest.approx({k: cli[k] for k in shared}, abs=1e-9)


def test_a_report_that_is_not_a_comparison_is_refused_by_name(tmp_path) -> None:
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"model": "minilm", "ndcg@10": 0.5}))
    with pytest.raises(UsageError, match=r"eval\.json: not an embed compare report"):
        load_comparison(str(path))
    path.write_text('{"metrics": {}\n,,}')
    with pytest.raises(UsageError, match=r"eval\.json:2: not valid JSON"):
        load_comparison(str(path))
