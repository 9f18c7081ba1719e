import pytest

from fintune.metrics.classification import NO_LABEL, classification_metrics, first_label

LABELS = ("negative", "neutral", "positive")


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("positive", "positive"),
        ("The sentiment is Negative, not positive.", "negative"),
        ("neutral.", "neutral"),
        ("I cannot tell", NO_LABEL),
        ("nonpositive", NO_LABEL),  # whole words only
    ],
)
def test_first_label_in_the_answer(answer, label):
    assert first_label(answer, LABELS) == label


def test_metrics_by_hand():
    answers = ["positive", "Positive sentiment", "negative", "no idea"]
    golds = ["positive", "positive", "neutral", "negative"]
    metrics = classification_metrics(answers, golds, LABELS)
    assert metrics["accuracy"] == 0.5
    assert metrics["accuracy_strict"] == 0.25
    assert metrics["no_label_rate"] == 0.25
    # per class F1: positive 1.0 (support 2), neutral 0 (1), negative 0 (1) -> weighted 0.5
    assert metrics["f1_weighted"] == pytest.approx(0.5)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        classification_metrics(["a"], [], LABELS)
