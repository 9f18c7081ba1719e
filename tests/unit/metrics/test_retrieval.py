import math

import pytest

from fintune.metrics.retrieval import (
    average_precision_at,
    mean_metrics,
    mrr_at,
    ndcg_at,
    per_query_metrics,
    precision_at,
    recall_at,
)

RANKED = ["d3", "d1", "d7", "d2"]
RELEVANT = {"d1": 1.0, "d2": 1.0, "d9": 1.0}  # d9 is never retrieved


def test_ndcg_by_hand():
    dcg = 1 / math.log2(3) + 1 / math.log2(5)  # hits at ranks 2 and 4
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # three relevant at ranks 1..3
    assert ndcg_at(RANKED, RELEVANT, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(RANKED, RELEVANT, 1) == 0.0


def test_graded_ndcg_prefers_the_better_document_first():
    grades = {"a": 2.0, "b": 1.0}
    assert ndcg_at(["a", "b"], grades, 2) == pytest.approx(1.0)
    assert ndcg_at(["b", "a"], grades, 2) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))


def test_mrr_recall_precision_map_by_hand():
    assert mrr_at(RANKED, RELEVANT, 10) == 0.5
    assert mrr_at(RANKED, RELEVANT, 1) == 0.0
    assert recall_at(RANKED, RELEVANT, 2) == pytest.approx(1 / 3)
    assert recall_at(RANKED, RELEVANT, 10) == pytest.approx(2 / 3)
    assert precision_at(RANKED, RELEVANT, 2) == 0.5
    assert precision_at(RANKED, RELEVANT, 10) == 0.2
    assert average_precision_at(RANKED, RELEVANT, 100) == pytest.approx((1 / 2 + 2 / 4) / 3)


def test_means_over_queries_and_missing_rankings_score_zero():
    per_query = per_query_metrics({"q1": ["d1"]}, {"q1": {"d1": 1.0}, "q2": {"d2": 1.0}})
    assert per_query["q2"]["ndcg@10"] == 0.0
    means = mean_metrics(per_query)
    assert means["recall@1"] == 0.5 and means["mrr@10"] == 0.5 and means["precision@10"] == pytest.approx(0.05)
