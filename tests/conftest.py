from __future__ import annotations

import json
from pathlib import Path

import pytest

from fintune.paths import data_root


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not (root / "README.md").is_file():
        pytest.fail(f"the shared financial data is missing at {root} (set FINTUNE_DATA)")
    return root
