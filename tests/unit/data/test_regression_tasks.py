"""Regression tasks and the merged sentiment task (issue 13): target checks, prompts, class mapping, baselines."""

import json

import pytest

from fintune.data.errors import DataError
from fintune.data.loading import load_records
from fintune.data.tasks import as_sentiment_record, get_task, score_to_sentiment
from fintune.llm.prompts import build_examples, number_answer
from fintune.llm.regression import regression_baselines, tweet_sentiment


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_target_that_is_not_a_number_or_out_of_range_names_file_line_and_field(tmp_path):
    rows = [
        {"text": "profit rose", "target": "X", "score": 0.5},
        {"text": "sales fell", "target": "X", "score": "high"},
        {"text": "flat", "target": "X", "score": 1.5},
    ]
    path = _write(tmp_path / "fiqa.jsonl", rows)
    with pytest.raises(DataError) as caught:
        load_records(path, task=get_task("fiqa_sa_score"))
    message = str(caught.value)
    assert "fiqa.jsonl:2: score: expected a number, got 'high'" in message
    assert "fiqa.jsonl:3: score: 1.5 outside the declared range -1.0..1.0" in message
    assert ":1:" not in message


def test_stocknet_returns_are_bounded_in_percent(tmp_path):
    row = {"ticker": "AAPL", "date": "2015-08-03", "texts": ["$AAPL up"], "ret_next_pct": 250.0}
    with pytest.raises(DataError, match=r"s.jsonl:1: ret_next_pct: 250.0 outside the declared range"):
        load_records(_write(tmp_path / "s.jsonl", [row]), task=get_task("stocknet"))


def test_regression_prompts_ask_for_one_number_and_learn_it_written_short():
    stock = {"ticker": "AAPL", "date": "2015-08-03", "texts": ["buy $AAPL", "sell"], "ret_next_pct": -3.2081}
    (example,) = build_examples(get_task("stocknet"), stock)
    assert "$AAPL" in example.prompt and "- buy $AAPL\n- sell" in example.prompt and example.target == "-3.208"
    assert number_answer(-0.0001) == "0" and number_answer(0.704) == "0.704"


@pytest.mark.parametrize(
    ("score", "label"), [(-0.2, "negative"), (-0.1, "neutral"), (0.0999, "neutral"), (0.1, "positive")]
)
def test_fiqa_scores_map_to_classes_with_finloras_thresholds(score, label):
    assert score_to_sentiment(score) == label


def test_sentiment_records_from_each_source():
    assert as_sentiment_record("tfns", {"id": 1, "text": "t", "label": "bearish"})["label"] == "negative"
    assert as_sentiment_record("tfns", {"id": 1, "text": "t", "label": "bullish"})["label"] == "positive"
    fiqa = as_sentiment_record("fiqa_sa_score", {"id": "f", "text": "t", "target": "X", "score": 0.3})
    assert fiqa == {"id": "f", "text": "t", "label": "positive", "source": "fiqa_sa_score"}
    (example,) = build_examples(get_task("sentiment"), fiqa)
    assert example.source == "fiqa_sa_score" and example.labels == ("negative", "neutral", "positive")


def test_sentiment_reads_every_source_interleaved(shared_data):
    from fintune.llm.data import task_examples

    dev = task_examples("sentiment", split="dev")
    assert [e.source for e in dev.examples[:3]] == ["fpb", "tfns", "fiqa_sa_score"]
    assert {e.target for e in dev.examples} == {"negative", "neutral", "positive"}
    assert dev.records == len(dev.examples) and "regression/fiqa_sa/dev.jsonl" in dev.source


def test_baselines_by_hand():
    task = get_task("stocknet")
    train = [{"texts": ["x"], "ret_next_pct": v} for v in (1.0, 3.0, -1.0)]  # mean 1, mean |r| 5/3
    scored = [
        {"texts": ["bullish calls"], "ret_next_pct": 2.0},  # sentiment +1 -> predict +5/3
        {"texts": ["sell puts"], "ret_next_pct": 1.0},  # sentiment -1 -> predict -5/3
        {"texts": ["no words"], "ret_next_pct": -2.0},  # none -> train mean 1
    ]
    out = regression_baselines(task, train, scored)
    mean = out["train_mean"]
    assert mean["value"] == 1.0 and mean["mse"] == pytest.approx((1 + 0 + 9) / 3)
    assert mean["directional_accuracy"] == pytest.approx(2 / 3) and "pearson" not in mean  # constant: no correlation
    sign = out["tweet_sentiment_sign"]
    s = 5 / 3
    assert sign["mse"] == pytest.approx(((2 - s) ** 2 + (1 + s) ** 2 + 9) / 3)
    assert sign["directional_accuracy"] == pytest.approx(1 / 3) and sign["coverage"] == pytest.approx(2 / 3)
    assert tweet_sentiment(["Bullish, bearish; BUY"]) == pytest.approx(1 / 3)


def test_a_file_given_for_sentiment_is_read_in_its_sources_schema(tmp_path):
    from fintune.llm.data import task_examples

    files = {
        "tfns": [{"text": "a", "label": "bearish"}, {"text": "b", "label": "neutral"}],
        "fiqa_sa_score": [{"text": "a", "target": "X", "score": -0.5}],
        "fpb": [{"text": "a", "label": "neutral"}],
        "": [{"text": "a", "label": "positive", "source": "tfns"}],  # the task's own fields
    }
    for source, rows in files.items():
        examples = task_examples("sentiment", _write(tmp_path / f"{source or 'own'}.jsonl", rows)).examples
        assert [e.source for e in examples] == [source or "tfns"] * len(rows)
    assert [e.target for e in task_examples("sentiment", tmp_path / "tfns.jsonl").examples] == ["negative", "neutral"]
    bad = _write(tmp_path / "bad.jsonl", [{"text": "a", "target": "X", "score": 2}])
    with pytest.raises(DataError, match=r"bad.jsonl:1: score: 2.0 outside the declared range"):
        task_examples("sentiment", bad)


def test_fiqa_sa_is_the_sentiment_tasks_fiqa_part_alone(shared_data, tmp_path):
    """FinLoRA's FiQA-SA column as a task of its own (a multi-task run can train it): the same prompts and
    classes as `sentiment` gives FiQA's dev file; another source's file is refused, not relabelled."""
    from fintune.errors import UsageError
    from fintune.llm.data import task_examples

    fiqa_dev = get_task("fiqa_sa_score").path("dev")
    alone = task_examples("fiqa_sa", split="dev")
    via_sentiment = task_examples("sentiment", fiqa_dev)
    assert alone.records == len(fiqa_dev.read_text().splitlines()) == len(alone.examples)
    assert [(e.prompt, e.target) for e in alone.examples] == [(e.prompt, e.target) for e in via_sentiment.examples]
    assert {e.target for e in alone.examples} == {"negative", "neutral", "positive"}
    assert len(task_examples("fiqa_sa", split="train").examples) > len(alone.examples)
    fpb = _write(tmp_path / "fpb.jsonl", [{"text": "a", "label": "neutral"}])
    with pytest.raises(UsageError, match="records of fpb; task 'fiqa_sa' reads fiqa_sa_score"):
        task_examples("fiqa_sa", fpb)
