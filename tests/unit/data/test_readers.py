import json

import pyarrow as pa
import pyarrow.parquet as pq

from fintune.data.errors import RecordError
from fintune.data.readers import Row, read_rows


def _split(items):
    return [i for i in items if isinstance(i, Row)], [i for i in items if isinstance(i, RecordError)]


def test_jsonl_reports_bad_json_and_encoding_by_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "a"}\n\n{"text": broken}\n{"text": "caf\xe9"}\n{"text": "b"}\n')
    rows, errors = _split(list(read_rows(path)))
    assert [(r.line, r.value["text"]) for r in rows] == [(1, "a"), (5, "b")]
    assert [e.line for e in errors] == [3, 4]
    assert "bad JSON" in errors[0].message
    assert "not UTF-8" in errors[1].message and "0xe9" in errors[1].message
    assert str(errors[0]).startswith(f"{path}:3: bad JSON")


def test_json_array_items_carry_their_start_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n  {"text": "a"},\n  {\n    "text": "b"\n  },\n  "plain"\n]\n')
    rows, errors = _split(list(read_rows(path)))
    assert not errors
    assert [(r.line, r.value) for r in rows] == [(2, {"text": "a"}), (3, {"text": "b"}), (6, "plain")]


def test_json_array_syntax_error_names_its_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n {"text": "a"},\n {"text": }\n]')
    rows, errors = _split(list(read_rows(path)))
    assert len(rows) == 1 and errors[0].line == 3


def test_json_file_with_one_object_per_line_reads_as_jsonl(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"text": "a"}) + "\n" + json.dumps({"text": "b"}) + "\n")
    rows, _ = _split(list(read_rows(path)))
    assert [r.line for r in rows] == [1, 2]


def test_csv_lines_account_for_header_and_multiline_fields(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text1,text2,score\na,b,0.5\n"multi\nline",c,1\nd,e\n')
    rows, errors = _split(list(read_rows(path)))
    assert [(r.line, r.value["text1"]) for r in rows] == [(2, "a"), (3, "multi\nline")]
    assert errors[0].line == 5 and "fewer columns" in errors[0].message


def test_parquet_rows_are_numbered(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "label": ["x", "y"]}), path)
    rows, _ = _split(list(read_rows(path)))
    assert [(r.line, r.value["label"]) for r in rows] == [(1, "x"), (2, "y")]


def test_conll_sentences_split_on_blank_lines(tmp_path):
    path = tmp_path / "d.conll"
    path.write_text("-DOCSTART- O\n\nAcme I-ORG\nlends O\n\nBob I-PER\nbroken\n")
    rows, errors = _split(list(read_rows(path)))
    assert [(r.line, r.value["tokens"], r.value["ner_tags"]) for r in rows] == [
        (3, ["Acme", "lends"], ["I-ORG", "O"]),
        (6, ["Bob"], ["I-PER"]),
    ]
    assert errors[0].line == 7
