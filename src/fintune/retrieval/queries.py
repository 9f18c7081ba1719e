"""Query files for batch search: a JSONL of {_id, text} or the queries of a BEIR folder."""

from __future__ import annotations

from pathlib import Path

from fintune.data.beir import is_beir_folder, load_beir
from fintune.retrieval.corpus import read_corpus


def read_queries(path: str | Path, split: str | None = None) -> tuple[list[str], list[str]]:
    """(ids, texts) from a JSONL of {_id, text} or a BEIR folder (optionally the queries judged in `split`).

    A query file has the corpus reader's shape (id + text), so it is read and checked by that reader."""
    folder = Path(path)
    if is_beir_folder(folder) and split:
        data = load_beir(folder, split)
        return list(data.queries), list(data.queries.values())
    queries = read_corpus(folder / "queries.jsonl" if is_beir_folder(folder) else folder)
    return [q.id for q in queries.docs], [q.text for q in queries.docs]
