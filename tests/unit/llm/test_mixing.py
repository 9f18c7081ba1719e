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


def test_a_total_is_shared_out_without_repeating_what_a_task_has_unseen():
    """`all_tasks_balanced`'s shape: weights that ask for every example of a small task beside a huge one.
    The shares apply to the total, so the small task's 30 examples are each seen once; sharing out the
    whole 1,030 and cutting the shuffled epoch to 40 (the old max_train_examples) repeated some and
    skipped others."""
    per_task = {"fpb": [f"f{i}" for i in range(30)], "headline": [f"h{i}" for i in range(1000)]}
    mixed = mix(per_task, "weighted", {"fpb": 30, "headline": 10}, seed=3, total=40)
    fpb = [item for task, item in mixed if task == "fpb"]
    assert Counter(task for task, _ in mixed) == {"fpb": 30, "headline": 10}
    assert sorted(fpb) == sorted(per_task["fpb"])  # each once
    cut = mix(per_task, "weighted", {"fpb": 30, "headline": 10}, seed=3)[:40]
    assert len({item for task, item in cut if task == "fpb"}) < 30  # what the cut did


def test_max_train_examples_caps_the_epoch_through_the_mixing(shared_data):
    from fintune.config.schema import LLMRunConfig
    from fintune.llm.train import load_train_data

    cfg = LLMRunConfig(tasks={"financebench": 1.0, "fpb": 1.0}, mixing="proportional", eval_limit=1)
    small = len([e for task, e in load_train_data(cfg).train if task == "financebench"])
    weighted = cfg.model_copy(
        update={
            "tasks": {"financebench": float(small), "fpb": 10.0},
            "mixing": "weighted",
            "max_train_examples": small + 10,
        }
    )
    train = load_train_data(weighted).train
    prompts = [e.prompt for task, e in train if task == "financebench"]
    assert len(train) == small + 10 and len(prompts) == len(set(prompts)) == small  # every one, once
    capped = load_train_data(cfg.model_copy(update={"max_train_examples": 10_000_000})).train
    assert len(capped) == len(load_train_data(cfg).train)  # a cap, not a target: never more than the tasks hold
