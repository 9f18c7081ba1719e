"""Playground examples come from the shared dev splits, prompted exactly as `fintune llm eval` prompts them."""

from __future__ import annotations

import json

import pytest

from fintune.ui.playground import as_example, example_choices, pick_example

pytestmark = pytest.mark.slow


def test_the_first_fpb_example_is_the_first_dev_sentence_with_its_gold(shared_data) -> None:
    first = json.loads((shared_data / "sentiment/fpb/dev.jsonl").read_text().splitlines()[0])
    label, index = example_choices("fpb")[0]
    prompt, gold = pick_example("fpb", index)
    assert first["text"][:40] in label
    assert gold == first["label"]
    expected = (
        "Instruction: What is the sentiment of this news? Please choose an answer from "
        f"{{negative/neutral/positive}}.\nInput: {first['text']}\nAnswer:"
    )
    assert prompt == expected
    assert as_example("fpb", first["text"]).prompt == expected  # typed text gets the same prompt


def test_a_train_only_task_offers_its_held_out_slice(shared_data) -> None:
    choices = example_choices("formula")
    assert choices
    prompt, gold = pick_example("formula", choices[0][1])
    assert prompt and gold
