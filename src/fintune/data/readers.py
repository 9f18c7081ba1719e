"""Readers: JSONL, JSON arrays, CSV, Parquet and CoNLL files, each record tagged with its line.

A reader yields `Row(line, value)` for good rows and `RecordError` for rows it cannot parse
(bad JSON, bad UTF-8), so one pass reports every problem in a file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintune.data.errors import RecordError
from fintune.errors import InputNotFoundError, UsageError


@dataclass(frozen=True)
class Row:
    line: int
    value: Any


Item = Row | RecordError

SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".conll": "conll",
    ".iob": "conll",
}


def file_kind(path: Path) -> str:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UsageError(f"{path}: unknown file type '{path.suffix}' (known: {', '.join(sorted(SUFFIXES))})")
    if kind == "json" and _first_char(path) != "[":
        return "jsonl"  # a .json file with one object per line
    return kind


def _first_char(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(4096).decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    return head[:1]


def read_rows(path: str | Path) -> Iterator[Item]:
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such file")
    kind = file_kind(path)
    return {
        "jsonl": read_jsonl,
        "json": read_json_array,
        "csv": read_csv,
        "tsv": read_tsv,
        "parquet": read_parquet,
        "conll": read_conll,
    }[kind](path)


def _decode(path: Path, line_no: int, raw: bytes) -> str | RecordError:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1].hex()
        return RecordError(path, line_no, None, f"bad encoding: byte 0x{bad} at column {exc.start + 1} is not UTF-8")


def _decode_file(path: Path) -> str | RecordError:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line = raw.count(b"\n", 0, exc.start) + 1
        line_end = raw.find(b"\n", exc.start)
        return _decode(path, line, raw[line_start : line_end if line_end >= 0 else len(raw)])


def _lines(path: Path) -> Iterator[tuple[int, str] | RecordError]:
    """(line number, stripped text) per line, or the line's encoding error."""
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            text = _decode(path, line_no, raw)
            yield text if isinstance(text, RecordError) else (line_no, text.lstrip("\ufeff").strip())


def read_jsonl(path: Path) -> Iterator[Item]:
    for item in _lines(path):
        if isinstance(item, RecordError):
            yield item
            continue
        line_no, text = item
        if not text:
            continue
        try:
            yield Row(line_no, json.loads(text))
        except json.JSONDecodeError as exc:
            yield RecordError(path, line_no, None, f"bad JSON: {exc.msg} at column {exc.colno}")


def read_json_array(path: Path) -> Iterator[Item]:
    """Each array element with the line it starts on (the json module gives offsets, not lines)."""
    text = _decode_file(path)
    if isinstance(text, RecordError):
        yield text
        return
    text = text.lstrip("\ufeff")
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if text[pos : pos + 1] != "[":
        yield RecordError(path, 1, None, "bad JSON: expected an array")
        return
    pos = _skip_ws(text, pos + 1)
    while pos < len(text) and text[pos] != "]":
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield RecordError(path, exc.lineno, None, f"bad JSON: {exc.msg} at column {exc.colno}")
            return  # no safe way to resynchronise inside an array
        yield Row(line, value)
        pos = _skip_ws(text, pos)
        if text[pos : pos + 1] == ",":
            pos = _skip_ws(text, pos + 1)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _read_delimited(path: Path, delimiter: str) -> Iterator[Item]:
    text = _decode_file(path)
    if isinstance(text, RecordError):
        yield text
        return
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter)
    start = 2  # line 1 is the header
    for record in reader:
        if None in record:
            yield RecordError(path, start, None, f"row has {len(reader.fieldnames or [])}+ extra column(s)")
        elif any(v is None for v in record.values()):
            yield RecordError(path, start, None, "row has fewer columns than the header")
        else:
            yield Row(start, record)
        start = reader.line_num + 1


def read_csv(path: Path) -> Iterator[Item]:
    return _read_delimited(path, ",")


def read_tsv(path: Path) -> Iterator[Item]:
    return _read_delimited(path, "\t")


def read_parquet(path: Path) -> Iterator[Item]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for index, record in enumerate(table.to_pylist(), start=1):
        yield Row(index, record)


def read_conll(path: Path) -> Iterator[Item]:
    """CoNLL-style token tags: `token [other columns] tag` per line, blank line between sentences."""
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    for item in _lines(path):
        if isinstance(item, RecordError):
            yield item
            continue
        line_no, text = item
        if not text or text.startswith("-DOCSTART-"):
            if tokens:
                yield Row(start, {"tokens": tokens, "ner_tags": tags})
            tokens, tags = [], []
            continue
        parts = text.split()
        if len(parts) < 2:
            yield RecordError(path, line_no, "ner_tags", "expected 'token tag' on the line")
            continue
        if not tokens:
            start = line_no
        tokens.append(parts[0])
        tags.append(parts[-1])
    if tokens:
        yield Row(start, {"tokens": tokens, "ner_tags": tags})
