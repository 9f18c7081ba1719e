import json

import pytest

from fintune.data.beir import BeirData
from fintune.embed.compare import compare_results, first_relevant_rank, write_report
from fintune.embed.evaluate import RetrievalResult
from fintune.metrics.retrieval import mean_metrics, per_query_metrics


def result(rankings, qrels):
    per_query = per_query_metrics(rankings, qrels)
    metrics = mean_metrics(per_query) | {
        "queries": len(qrels),
        "corpus_size": 3,
        "query_latency_ms_p50": 2.0,
        "query_latency_ms_p95": 3.0,
        "corpus_docs_per_s": 100.0,
    }
    return RetrievalResult(metrics, per_query, rankings)


@pytest.fixture
def data():
    return BeirData(
        folder="beir",
        split="dev",
        corpus={d: {"text": f"passage {d}"} for d in ("a", "b", "c")},
        queries={"q1": "first?", "q2": "second?", "q3": "third?"},
        qrels={"q1": {"a": 1.0}, "q2": {"b": 1.0}, "q3": {"c": 1.0}},
    )


def test_examples_show_who_moved_and_metrics_show_the_change(data, tmp_path):
    base = result({"q1": ["b", "c", "a"], "q2": ["b", "a", "c"], "q3": ["c", "a", "b"]}, data.qrels)
    tuned = result({"q1": ["a", "b", "c"], "q2": ["a", "b", "c"], "q3": ["c", "a", "b"]}, data.qrels)
    comparison = compare_results("base", "tuned", data, base, tuned)
    assert [(m["query_id"], m["base_rank"], m["tuned_rank"]) for m in comparison.improved] == [("q1", 3, 1)]
    assert [(m["query_id"], m["base_rank"], m["tuned_rank"]) for m in comparison.worsened] == [("q2", 1, 2)]
    change = comparison.changes()["recall@1"]
    assert change["base"] == pytest.approx(2 / 3) and change["tuned"] == pytest.approx(2 / 3)
    mrr = comparison.changes()["mrr@10"]
    assert mrr["change"] == pytest.approx((1 + 0.5 + 1) / 3 - (1 / 3 + 1 + 1) / 3)
    md, js = write_report(comparison, tmp_path / "r.md")
    text = md.read_text()
    assert "| mrr@10 |" in text and "first?" in text and "rank 3 -> 1" in text
    assert json.loads(js.read_text())["improved_examples"][0]["query"] == "first?"


def test_missing_from_the_top_100_counts_as_rank_101(data):
    assert first_relevant_rank(["x", "y"], {"a": 1.0}) is None
    base = result({"q1": [], "q2": ["b"], "q3": ["c"]}, data.qrels)
    tuned = result({"q1": ["a"], "q2": ["b"], "q3": ["c"]}, data.qrels)
    (moved,) = compare_results("b", "t", data, base, tuned).improved
    assert (moved["base_rank"], moved["tuned_rank"]) == (101, 1)
