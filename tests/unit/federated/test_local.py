"""A client's rounds walk one seeded shuffle of its data, not the file's order."""

from __future__ import annotations

from collections import Counter

from datasets import Dataset

from fintune.federated.local import round_slice


def _sorted_file(n_per_label: int = 30) -> Dataset:
    labels = ["positive"] * n_per_label + ["neutral"] * n_per_label + ["negative"] * n_per_label
    return Dataset.from_dict({"i": list(range(len(labels))), "label": labels})


def test_rounds_cover_the_data_once_before_wrapping_and_mix_the_labels_of_a_sorted_file():
    data = _sorted_file()
    rounds = [round_slice(data, r, 30, seed=3) for r in (1, 2, 3)]
    seen = [i for part in rounds for i in part["i"]]
    assert sorted(seen) == list(range(90))  # three rounds of 30: every record once, none twice
    assert all(len(Counter(part["label"])) == 3 for part in rounds)  # file order would give one label each
    assert round_slice(data, 4, 30, seed=3)["i"] == rounds[0]["i"]  # round 4 wraps to round 1's records


def test_the_shuffle_is_the_seeds():
    data = _sorted_file()
    assert round_slice(data, 1, 30, seed=3)["i"] == round_slice(data, 1, 30, seed=3)["i"]
    assert round_slice(data, 1, 30, seed=3)["i"] != round_slice(data, 1, 30, seed=4)["i"]
