"""Field specs and the record checks shared by named formats and financial tasks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fintune.data.errors import RecordError

Kind = Literal["text", "optional_text", "score01", "int01", "label", "texts", "messages", "tags", "number", "any"]
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Field:
    names: tuple[str, ...]  # accepted spellings, first is canonical (e.g. context | prompt)
    kind: Kind = "text"
    required: bool = True
    bounds: tuple[float, float] | None = None  # declared range of a "number" (inclusive)

    @property
    def name(self) -> str:
        return self.names[0]

    def find(self, record: dict[str, Any]) -> str | None:
        return next((n for n in self.names if n in record), None)


def field(*names: str, kind: Kind = "text", required: bool = True, bounds: tuple[float, float] | None = None) -> Field:
    return Field(names=names, kind=kind, required=required, bounds=bounds)


def check_fields(
    record: Any, fields: tuple[Field, ...], path: Path, line: int, labels: tuple[str, ...] | None = None
) -> list[RecordError]:
    """Every problem of one record against `fields`; labels (if given) bound `label`/`tags` values."""
    if not isinstance(record, dict):
        return [RecordError(path, line, None, f"expected an object, got {type(record).__name__}")]
    errors: list[RecordError] = []
    for spec in fields:
        key = spec.find(record)
        if key is None:
            if spec.required:
                errors.append(RecordError(path, line, "|".join(spec.names), "missing field"))
            continue
        problem = _check_value(spec.kind, record[key], labels, record) or _check_bounds(spec, record[key])
        if problem:
            errors.append(RecordError(path, line, key, problem))
    return errors


def _check_value(kind: Kind, value: Any, labels: tuple[str, ...] | None, record: dict[str, Any]) -> str | None:
    if kind == "any":
        return None
    if kind in ("text", "optional_text"):
        if not isinstance(value, str):
            return f"expected a string, got {type(value).__name__}"
        if kind == "text" and not value.strip():
            return "empty text"
        return None
    if kind == "score01":
        number = as_number(value)
        if number is None:
            return f"expected a number, got {value!r}"
        return None if 0.0 <= number <= 1.0 else f"score {number} outside 0..1"
    if kind == "number":
        number = as_number(value)
        return None if number is not None and math.isfinite(number) else f"expected a number, got {value!r}"
    if kind == "int01":
        return None if str(value) in ("0", "1") and not isinstance(value, float) else f"expected 0 or 1, got {value!r}"
    if kind == "label":
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value).strip() == "":
            return f"expected a label (string or integer), got {value!r}"
        if labels is not None and str(value) not in labels:
            return f"label {value!r} not in the label set {{{', '.join(labels)}}}"
        return None
    if kind == "texts":
        if not isinstance(value, list) or not value:
            return "expected a non-empty list of strings"
        bad = [i for i, v in enumerate(value) if not isinstance(v, str) or not v.strip()]
        return f"item {bad[0]} is not a non-empty string" if bad else None
    if kind == "tags":
        return _check_tags(value, labels, record)
    if kind == "messages":
        return _check_messages(value)
    raise AssertionError(kind)


def _check_bounds(spec: Field, value: Any) -> str | None:
    """A number outside the field's declared range (checked after its kind, so `value` is a number)."""
    if spec.bounds is None:
        return None
    number = as_number(value)
    low, high = spec.bounds
    return None if number is None or low <= number <= high else f"{number} outside the declared range {low}..{high}"


def _check_tags(value: Any, labels: tuple[str, ...] | None, record: dict[str, Any]) -> str | None:
    if not isinstance(value, list) or not value:
        return "expected a non-empty list of tags"
    tokens = record.get("tokens")
    if isinstance(tokens, list) and len(tokens) != len(value):
        return f"{len(value)} tags for {len(tokens)} tokens"
    if labels is not None:
        bad = [t for t in value if str(t) not in labels]
        if bad:
            return f"tag {bad[0]!r} not in the tag set {{{', '.join(labels)}}}"
    return None


def _check_messages(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return "expected a non-empty list of {role, content} messages"
    for i, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            return f"message {i} must have 'role' and 'content'"
        if message["role"] not in ROLES:
            return f"message {i} has role {message['role']!r}; expected one of {', '.join(ROLES)}"
        if not isinstance(message["content"], str) or not message["content"].strip():
            return f"message {i} has empty content"
    if not any(m["role"] == "assistant" for m in value):
        return "no assistant message to learn from"
    return None


def as_number(value: Any) -> float | None:
    """Numbers, and numeric strings as CSV files give them."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
