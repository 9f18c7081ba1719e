"""Scoring of generated numbers (issue 13): metrics by hand, unparsed answers counted, per-source scores."""

import math

import pytest

from fintune.llm.evaluate import SCORERS, score_by_source
from fintune.llm.prompts import Example
from fintune.metrics.regression import regression_metrics


def test_regression_metrics_by_hand():
    m = regression_metrics([1.0, -2.0, 4.0], [1.0, 2.0, 3.0])
    assert m["mse"] == pytest.approx((0 + 16 + 1) / 3)
    assert m["r2"] == pytest.approx(1 - 17 / 2)  # SS_res 17, SS_tot 2
    assert m["directional_accuracy"] == pytest.approx(2 / 3)  # -2 against 2 has the wrong sign
    # Pearson: x=(1,-2,4) centred (0,-3,3), y=(1,2,3) centred (-1,0,1): sum of products 3
    assert m["pearson"] == pytest.approx(3 / math.sqrt((0 + 9 + 9) * (1 + 0 + 1)))


def test_unparsed_answers_are_counted_and_left_out_of_the_scores():
    answers = ["0.5", "about -0.2 I think", "no idea", "0.1"]
    golds = ["0.4", "-0.3", "0.9", "0.2"]
    m = SCORERS["regression"](answers, golds, [Example("p", g) for g in golds])
    assert m["unparsed"] == 1.0 and m["unparsed_rate"] == 0.25
    assert m["mse"] == pytest.approx((0.01 + 0.01 + 0.01) / 3)


def test_multi_source_tasks_are_scored_per_source():
    labels = ("negative", "neutral", "positive")
    examples = [
        Example("a", "positive", labels, source="fpb"),
        Example("b", "negative", labels, source="fpb"),
        Example("c", "neutral", labels, source="tfns"),
    ]
    by = score_by_source("classification", ["positive", "positive", "neutral"], examples)
    assert by["fpb"]["accuracy"] == 0.5 and by["fpb"]["examples"] == 2.0
    assert by["tfns"]["accuracy"] == 1.0
    assert score_by_source("classification", ["x"], [Example("a", "positive", labels)]) == {}
