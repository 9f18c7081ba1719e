"""Mixing strategies against hand-computed shares and counts."""

import random
from collections import Counter

import pytest

from fintune.llm.mixing import draw, mix, task_counts, task_shares

SIZES = {"fpb": 300, "ner": 100}


def test_proportional_shares_follow_sizes():
    assert task_shares(SIZES, "proportional") == {"fpb": 0.75, "ner": 0.25}


def test_balanced_shares_are_equal():
    assert task_shares(SIZES, "balanced") == {"fpb": 0.5, "ner": 0.5}


def test_weighted_shares_follow_weights():
    assert task_shares(SIZES, "weighted", {"fpb": 1.0, "ner": 3.0}) == {"fpb": 0.25, "ner": 0.75}
    with pytest.raises(ValueError, match="missing: ner"):
        task_shares(SIZES, "weighted", {"fpb": 1.0})


def test_temperature_shares_flatten_sizes():
    # T=2: sqrt(300)=17.32, sqrt(100)=10 -> 0.634 / 0.366
    shares = task_shares(SIZES, "temperature", temperature=2.0)
    assert shares["fpb"] == pytest.approx(17.3205 / 27.3205, rel=1e-4)
    assert task_shares(SIZES, "temperature", temperature=1.0) == pytest.approx(task_shares(SIZES, "proportional"))


def test_counts_sum_to_total_by_largest_remainder():
    assert task_counts({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10) == {"a": 4, "b": 3, "c": 3}


def test_draw_repeats_nothing_before_all_are_seen():
    items = list(range(7))
    out = draw(items, 10, random.Random(0))
    assert sorted(out[:7]) == items and len(out) == 10


def test_mix_balanced_upsamples_the_small_task():
    per_task = {"fpb": [f"f{i}" for i in range(300)], "ner": [f"n{i}" for i in range(100)]}
    mixed = mix(per_task, "balanced", seed=1)
    counts = Counter(task for task, _ in mixed)
    assert counts == {"fpb": 200, "ner": 200}
    assert len({item for task, item in mixed if task == "ner"}) == 100  # every small-task example is used
    assert mix(per_task, "proportional", seed=1) != mixed
    assert Counter(t for t, _ in mix(per_task, "proportional", seed=1)) == {"fpb": 300, "ner": 100}


def test_mix_refuses_an_empty_task():
    with pytest.raises(ValueError, match="no examples for task"):
        mix({"fpb": ["a"], "ner": []})
