from __future__ import annotations

import json
from pathlib import Path

import pytest

from fintune.paths import data_root


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_beir(folder: Path, passages: dict[str, str], queries: list[dict], split: str, judged: dict[str, str]) -> Path:
    """A BEIR folder: `passages` id -> text, query records, and one qrels split (query id -> passage id)."""
    write_jsonl(folder / "corpus.jsonl", [{"_id": d, "title": "", "text": t} for d, t in passages.items()])
    write_jsonl(folder / "queries.jsonl", queries)
    (folder / "qrels").mkdir()
    rows = "".join(f"{q}\t{d}\t1\n" for q, d in judged.items())
    (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not (root / "README.md").is_file():
        pytest.fail(f"the shared financial data is missing at {root} (set FINTUNE_DATA)")
    return root
