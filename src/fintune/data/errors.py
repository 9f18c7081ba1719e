"""Data errors as values: every bad record is reported with file, line and field, all at once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from fintune.errors import FintuneError


@dataclass(frozen=True)
class RecordError:
    path: Path
    line: int  # 1-based line (or row, for Parquet) where the record starts
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class DataError(FintuneError, ValueError):
    """Raised when a file holds bad records and skipping was not asked for."""

    def __init__(self, errors: list[RecordError], total: int | None = None, cap: int = 20):
        self.errors = errors
        self.total = total
        shown = "\n".join(f"  {e}" for e in errors[:cap])
        more = f"\n  ... and {len(errors) - cap} more" if len(errors) > cap else ""
        of = f" of {total}" if total is not None else ""
        hint = "\n(fix the records, or pass --skip-invalid to skip and count them)"
        super().__init__(f"{len(errors)} invalid record(s){of}:\n{shown}{more}{hint}")


def summarize_skips(errors: list[RecordError]) -> str:
    """One line for a log: how many records were skipped and the commonest reasons."""
    reasons = Counter(e.message.split(":")[0] for e in errors)
    top = ", ".join(f"{n}x {reason}" for reason, n in reasons.most_common(3))
    return f"skipped {len(errors)} invalid record(s) ({top}); first: {errors[0]}"
