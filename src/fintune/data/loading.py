"""Load a file of records in a named format or a task's schema, refusing or counting bad records."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintune.data.errors import DataError, RecordError, summarize_skips
from fintune.data.formats import FORMATS, RecordFormat, detect_format
from fintune.data.readers import Row, read_rows
from fintune.data.schema import Field, check_fields
from fintune.data.tasks import FinancialTask, get_task
from fintune.errors import UsageError
from fintune.log import first_reports

log = logging.getLogger(__name__)


@dataclass
class Records:
    path: Path
    schema: str  # format name, or "task:NAME"
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)  # bad records (skipped, if loaded)

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.errors)

    def __len__(self) -> int:
        return len(self.rows)


def _schema_for(
    first: Any, fmt: str | None, task: FinancialTask | None
) -> tuple[str, tuple[Field, ...], tuple[str, ...] | None]:
    if task is not None:
        if task.layout == "beir":
            raise UsageError(f"task '{task.name}' is a BEIR folder; load it with load_beir")
        return f"task:{task.name}", task.fields, task.labels
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown format '{fmt}'; known formats: {', '.join(FORMATS)}")
        return fmt, FORMATS[fmt].fields, None
    detected = detect_format(first)
    if detected is None:
        keys = sorted(first) if isinstance(first, dict) else type(first).__name__
        raise UsageError(f"cannot tell the format from the first record (fields: {keys}); pass a format or --task")
    return detected.name, detected.fields, None


def collect(path: str | Path, fmt: str | None = None, task: str | FinancialTask | None = None) -> Records:
    """Read and check every record; good rows and all errors, nothing raised for bad data."""
    path = Path(path)
    task_obj = get_task(task) if isinstance(task, str) else task
    records = Records(path=path, schema="")
    fields: tuple[Field, ...] | None = None
    labels: tuple[str, ...] | None = None
    for item in read_rows(path):
        if isinstance(item, RecordError):
            records.errors.append(item)
            continue
        value = {"text": item.value} if isinstance(item.value, str) else item.value
        if fields is None:
            records.schema, fields, labels = _schema_for(value, fmt, task_obj)
        problems = check_fields(value, fields, path, item.line, labels)
        if problems:
            records.errors.extend(_with_mixed_hint(problems, value, records.schema, item))
        else:
            records.rows.append(value)
            records.lines.append(item.line)
    records.errors.sort(key=lambda e: e.line)
    if fields is None and not records.errors:
        records.errors.append(RecordError(path, 1, None, "no records in file"))
    return records


def _with_mixed_hint(problems: list[RecordError], value: Any, schema: str, item: Row) -> list[RecordError]:
    """A record that is wholly another format is one error (mixed formats), not one per missing field."""
    other: RecordFormat | None = detect_format(value)
    if other is None or other.name == schema or schema.startswith("task:"):
        return problems
    missing = ", ".join(p.field or "" for p in problems if p.message == "missing field")
    detail = f"; missing {missing}" if missing else ""
    message = f"record looks like '{other.name}' but the file is '{schema}' (mixed formats){detail}"
    return [RecordError(problems[0].path, item.line, None, message)]


def load_records(
    path: str | Path,
    fmt: str | None = None,
    task: str | FinancialTask | None = None,
    skip_invalid: bool = False,
) -> Records:
    """Records for training or evaluation: bad data raises `DataError` unless `skip_invalid`."""
    records = collect(path, fmt, task)
    if records.errors and (not skip_invalid or not records.rows):
        raise DataError(records.errors, total=records.total)
    if fresh := first_reports(records.errors):  # once per bad record and process, not once per read
        log.warning("%s: %s", path, summarize_skips(fresh))
    return records
