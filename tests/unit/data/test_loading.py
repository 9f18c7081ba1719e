import logging

import pytest

from fintune.data.errors import DataError
from fintune.data.formats import detect_format
from fintune.data.loading import collect, load_records
from tests.conftest import write_jsonl


@pytest.mark.parametrize(
    ("record", "name"),
    [
        ({"text1": "a", "text2": "b", "score": 0.3}, "pairs"),
        ({"anchor": "a", "positive": "b", "negative": "c"}, "triplets"),
        ({"query": "q", "positive": "p", "negatives": ["n"]}, "query-positive"),
        ({"anchor": "q", "positive": "p"}, "query-positive"),
        ({"content": "c", "metadata": {"k": 1}, "label": "esg"}, "documents"),
        ({"id": 1, "text": "t", "label": "positive"}, "labelled"),
        ({"text": "t"}, "simple"),
        ("just a string", "simple"),
        ({"instruction": "i", "input": "", "output": "o"}, "alpaca"),
        ({"messages": [{"role": "user", "content": "u"}]}, "chat"),
        ({"prompt": "p", "completion": "c"}, "completion"),
        ({"context": "p", "target": "c", "pages": [1]}, "completion"),
        ({"tokens": ["a"], "ner_tags": ["O"]}, "tokens"),
    ],
)
def test_detect_format(record, name):
    assert detect_format(record).name == name


def test_unknown_shape_is_not_guessed():
    assert detect_format({"foo": 1}) is None


def test_every_bad_record_is_reported_with_file_line_and_field(tmp_path):
    path = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"text1": "a", "text2": "b", "score": 0.5},
            {"text1": "a", "text2": "", "score": 0.5},
            {"text1": "a", "text2": "b", "score": 1.5},
            {"text1": "a", "score": 0.1},
            {"text1": "a", "text2": "b", "score": "high"},
        ],
    )
    records = collect(path)
    assert records.schema == "pairs" and len(records) == 1
    assert [str(e) for e in records.errors] == [
        f"{path}:2: text2: empty text",
        f"{path}:3: score: score 1.5 outside 0..1",
        f"{path}:4: text2: missing field",
        f"{path}:5: score: expected a number, got 'high'",
    ]


def test_mixed_formats_are_named(tmp_path):
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [{"anchor": "a", "positive": "p", "negative": "n"}, {"text1": "a", "text2": "b"}],
    )
    (error,) = collect(path).errors
    assert str(error) == (
        f"{path}:2: record looks like 'pairs' but the file is 'triplets' (mixed formats); "
        "missing anchor, positive, negative"
    )


def test_loader_refuses_bad_data_by_default(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "ok", "label": "positive"}, {"text": " ", "label": "x"}])
    with pytest.raises(DataError, match=r"d.jsonl:2: text: empty text"):
        load_records(path)


def test_skip_invalid_skips_and_counts_loudly(tmp_path, caplog):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "ok", "label": "positive"}, {"text": "", "label": "x"}])
    with caplog.at_level(logging.WARNING):
        records = load_records(path, skip_invalid=True)
    assert len(records) == 1 and records.total == 2 and len(records.errors) == 1
    assert "skipped 1 invalid record" in caplog.text


def test_task_schema_checks_the_label_set(tmp_path):
    path = write_jsonl(
        tmp_path / "fpb.jsonl",
        [{"id": "a", "text": "Profit rose", "label": "positive"}, {"id": "b", "text": "Fell", "label": "bearish"}],
    )
    records = collect(path, task="fpb")
    assert records.schema == "task:fpb"
    (error,) = records.errors
    assert error.line == 2 and error.field == "label" and "not in the label set" in error.message


def test_tags_must_match_tokens_and_tag_set(tmp_path):
    path = write_jsonl(
        tmp_path / "ner.jsonl",
        [{"tokens": ["a", "b"], "ner_tags": ["O"]}, {"tokens": ["a"], "ner_tags": ["B-ORG"]}],
    )
    errors = collect(path, task="ner").errors
    assert [e.message for e in errors] == [
        "1 tags for 2 tokens",
        "tag 'B-ORG' not in the tag set {I-PER, I-ORG, I-LOC, I-MISC, O}",
    ]


def test_empty_file_is_an_error_not_an_empty_dataset(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match="no records"):
        load_records(path)


def test_one_column_csv_for_pairs_names_the_missing_column(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("text1\nonly one\n")
    errors = collect(path, fmt="pairs").errors
    assert str(errors[0]) == f"{path}:2: text2: missing field"


def test_chat_records_need_an_assistant_turn(tmp_path):
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    (error,) = collect(path, fmt="chat").errors
    assert error.field == "messages" and "assistant" in error.message
