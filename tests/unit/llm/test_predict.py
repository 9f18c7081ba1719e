"""What `/v1/predict` and the playground read from an answer: the label or number `llm eval` scores."""

from __future__ import annotations

import pytest

from fintune.errors import UsageError
from fintune.llm.predict import as_example, parse_answer

SENTIMENT = ("negative", "neutral", "positive")


@pytest.mark.parametrize(
    ("family", "answer", "expected"),
    [
        ("classification", "The sentiment is Positive.", "positive"),
        ("classification", "I cannot tell.", None),  # no label: None, never an empty string
        ("numeric", "The margin is 25.5%.", 25.5),
        ("regression", "no number here", None),
        ("generation", "A summary.", None),
    ],
)
def test_parse_answer(family, answer, expected) -> None:
    assert parse_answer(family, answer, SENTIMENT) == expected


def test_plain_fpb_text_gets_the_training_prompt_and_labels() -> None:
    example = as_example("fpb", "  Sales fell 20%.  ")
    assert "Input: Sales fell 20%." in example.prompt and example.prompt.startswith("Instruction:")
    assert set(example.labels) == set(SENTIMENT)
    with pytest.raises(UsageError):
        as_example("fpb", "   ")
