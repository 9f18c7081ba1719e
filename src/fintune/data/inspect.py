"""`fintune data inspect`: what a file holds and what is wrong with it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fintune.data.beir import collect_beir, is_beir_folder, splits_of
from fintune.data.errors import RecordError
from fintune.data.loading import collect
from fintune.data.tasks import get_task


@dataclass
class Inspection:
    path: Path
    schema: str
    rows: int
    fields: Counter[str] = field(default_factory=Counter)
    labels: dict[str, Counter[str]] = field(default_factory=dict)  # label field -> distribution
    errors: list[RecordError] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)  # e.g. BEIR corpus and query counts

    @property
    def ok(self) -> bool:
        return not self.errors


LABEL_FIELDS = ("label", "price_sentiment", "ner_tags", "tags", "score")


def inspect_path(path: str | Path, task: str | None = None) -> Inspection:
    path = Path(path)
    task_obj = get_task(task) if task else None
    if is_beir_folder(path) or (task_obj is not None and task_obj.layout == "beir"):
        return _inspect_beir(path)
    records = collect(path, task=task_obj)
    report = Inspection(path=path, schema=records.schema, rows=records.total, errors=records.errors)
    for row in records.rows:
        report.fields.update(row.keys())
    label_fields = [task_obj.label_field] if task_obj and task_obj.label_field else LABEL_FIELDS
    for name in label_fields:
        values = [row[name] for row in records.rows if name in row]
        if not values:
            continue
        flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
        if name == "score":
            flat = [_score_bucket(v) for v in flat]
        report.labels[name] = Counter(str(v) for v in flat)
    return report


def _score_bucket(value: float | str) -> str:
    number = float(value)  # a number or numeric string (CSV), already checked by the format
    return f"{min(int(number * 4), 3) / 4:.2f}-{min(int(number * 4), 3) / 4 + 0.25:.2f}"


def _inspect_beir(folder: Path) -> Inspection:
    splits = splits_of(folder)
    report = Inspection(path=folder, schema="beir", rows=0)
    seen: set[str] = set()
    for split in splits:
        data = collect_beir(folder, split)
        new = [e for e in data.errors if str(e) not in seen]  # corpus errors repeat per split
        seen.update(str(e) for e in new)
        report.errors.extend(new)
        report.extra[f"queries judged in {split}"] = len(data.qrels)
        report.extra["corpus passages"] = len(data.corpus)
        report.rows = len(data.corpus)
        report.fields.update({"_id": len(data.corpus), "text": len(data.corpus)})
    return report
