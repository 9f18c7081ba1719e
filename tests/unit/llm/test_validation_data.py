"""Where an LLM run validates: the user's own data unless an eval file is named, not a dev split it never chose."""

import shlex

import pytest

from fintune.cli.main import build_parser
from fintune.cli.runs import run_config_from_args
from fintune.config import ConfigError, LLMRunConfig
from fintune.llm.data import HOLDOUT_FRACTION, training_sets
from tests.conftest import write_jsonl

LABELS = ("negative", "neutral", "positive")


def fpb_rows(prefix: str, n: int) -> list[dict]:
    return [{"id": f"{prefix}{i}", "text": f"{prefix} sentence {i}", "label": LABELS[i % 3]} for i in range(n)]


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A stand-in shared data root whose fpb train and dev splits are recognisable by their text."""
    root = tmp_path / "shared"
    write_jsonl(root / "sentiment" / "fpb" / "train.jsonl", fpb_rows("shared-train", 30))
    write_jsonl(root / "sentiment" / "fpb" / "dev.jsonl", fpb_rows("shared-dev", 12))
    monkeypatch.setenv("FINTUNE_DATA", str(root))
    return root


def config_from(line: str) -> LLMRunConfig:
    return run_config_from_args(build_parser().parse_args(shlex.split(line)), "llm")


def test_own_data_without_an_eval_file_validates_on_a_held_out_slice_of_it(registry, tmp_path):
    mine = write_jsonl(tmp_path / "mine.jsonl", fpb_rows("mine", 200))
    cfg = config_from(f"llm train --task fpb --data {mine} --output o --debug")
    sets = training_sets(cfg)
    held = [e.prompt for e in sets.validation["fpb"]]
    trained = [e.prompt for e in sets.train["fpb"].examples]
    assert len(held) == int(200 * HOLDOUT_FRACTION) and len(trained) == 200 - len(held)
    assert all("mine sentence" in p for p in held) and not set(held) & set(trained)
    assert any("held-out 10" in note for note in sets.notes)
    again = training_sets(cfg)  # seeded: the same slice every time, so `llm eval` can find it again
    assert [e.prompt for e in again.validation["fpb"]] == held


def test_the_held_out_slice_is_capped_at_the_validation_size(registry, tmp_path):
    mine = write_jsonl(tmp_path / "mine.jsonl", fpb_rows("mine", 400))
    sets = training_sets(LLMRunConfig(task="fpb", dataset_path=str(mine), eval_limit=7))
    assert len(sets.validation["fpb"]) == 7 and len(sets.train["fpb"].examples) == 393


def test_a_named_eval_file_is_the_validation_set(registry, tmp_path):
    mine = write_jsonl(tmp_path / "mine.jsonl", fpb_rows("mine", 40))
    theirs = write_jsonl(tmp_path / "eval.jsonl", fpb_rows("eval", 5))
    sets = training_sets(config_from(f"llm train --task fpb --data {mine} --eval-path {theirs}"))
    assert all("eval sentence" in e.prompt for e in sets.validation["fpb"])
    assert len(sets.validation["fpb"]) == 5 and len(sets.train["fpb"].examples) == 40 and not sets.notes


@pytest.mark.parametrize("data", [None, "registry"])
def test_the_tasks_own_train_split_validates_on_its_dev_split(registry, data):
    path = str(registry / "sentiment" / "fpb" / "train.jsonl") if data else None  # FinLoRA's configs name it
    sets = training_sets(LLMRunConfig(task="fpb", dataset_path=path))
    assert len(sets.validation["fpb"]) == 12 and all("shared-dev" in e.prompt for e in sets.validation["fpb"])
    assert len(sets.train["fpb"].examples) == 30 and not sets.notes


def test_the_trainer_gets_the_same_selection(registry, tmp_path):
    from fintune.llm.train import load_train_data

    mine = write_jsonl(tmp_path / "mine.jsonl", fpb_rows("mine", 100))
    data = load_train_data(LLMRunConfig(task="fpb", dataset_path=str(mine)))
    held = {e.prompt for e in data.eval["fpb"]}
    assert held and all("mine sentence" in p for p in held) and not held & {e.prompt for _, e in data.train}


def test_a_data_file_with_several_tasks_is_refused():
    with pytest.raises(ValueError, match="dataset_path and eval_path are one task's files"):
        LLMRunConfig(tasks=["fpb", "tfns"], dataset_path="mine.jsonl")
    with pytest.raises(ConfigError, match="dataset_path"):
        config_from("llm train --data mine.jsonl tasks=[fpb,tfns]")


def test_a_limit_is_a_seeded_sample_in_file_order_not_the_head_of_a_sorted_file():
    from fintune.llm.data import sample_examples

    rows = ["positive"] * 50 + ["neutral"] * 50 + ["negative"] * 50  # sorted, like the shared dev files
    picked = sample_examples(list(enumerate(rows)), 30, seed=0)
    assert len(picked) == 30 and {label for _, label in picked} == {"positive", "neutral", "negative"}
    assert [i for i, _ in picked] == sorted(i for i, _ in picked)  # file order kept
    assert picked == sample_examples(list(enumerate(rows)), 30, seed=0)  # the seed's sample, every time
    assert picked != sample_examples(list(enumerate(rows)), 30, seed=1)
    assert sample_examples(rows, None, 0) == rows and sample_examples(rows, 500, 0) == rows
