"""BEIR folders: `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv`, checked against each other."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from fintune.data.errors import DataError, RecordError, summarize_skips
from fintune.data.readers import read_jsonl, read_tsv
from fintune.data.schema import as_number
from fintune.errors import InputNotFoundError
from fintune.log import first_reports

log = logging.getLogger(__name__)

EMPTY_TEXT = "empty text"


@dataclass
class BeirData:
    folder: Path
    split: str
    corpus: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {title, text, ...}
    queries: dict[str, str] = field(default_factory=dict)  # only the queries judged in this split
    qrels: dict[str, dict[str, float]] = field(default_factory=dict)
    query_fields: dict[str, dict] = field(default_factory=dict)  # the judged queries' full records (e.g. answer)
    errors: list[RecordError] = field(default_factory=list)

    def doc_text(self, doc_id: str) -> str:
        doc = self.corpus[doc_id]
        title = doc.get("title") or ""
        return f"{title}. {doc['text']}" if title and not doc["text"].startswith(title) else doc["text"]


def is_beir_folder(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file()


def splits_of(folder: Path) -> list[str]:
    return sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))


def _read_id_text(path: Path, errors: list[RecordError]) -> tuple[dict[str, dict], dict[str, RecordError]]:
    """Good records by id, and the records that have an id but no usable text (by id).

    Problems without an id (bad JSON, missing or duplicate id) go straight to `errors`.
    """
    good: dict[str, dict] = {}
    bad: dict[str, RecordError] = {}
    for item in read_jsonl(path):
        if isinstance(item, RecordError):
            errors.append(item)
            continue
        rec = item.value
        if not isinstance(rec, dict):
            errors.append(RecordError(path, item.line, None, "expected an object"))
            continue
        doc_id, text = rec.get("_id"), rec.get("text")
        if doc_id is None or str(doc_id) == "":
            errors.append(RecordError(path, item.line, "_id", "missing field"))
        elif str(doc_id) in good or str(doc_id) in bad:
            errors.append(RecordError(path, item.line, "_id", f"duplicate id {doc_id!r}"))
        elif not isinstance(text, str) or not text.strip():
            problem = EMPTY_TEXT if isinstance(text, str) else "missing field"
            bad[str(doc_id)] = RecordError(path, item.line, "text", problem)
        else:
            good[str(doc_id)] = rec
    return good, bad


def collect_beir(folder: str | Path, split: str) -> BeirData:
    """Read a BEIR folder and every problem that touches `split`.

    Corpus problems always count (the corpus is searched in every split); a bad query counts only
    when the split judges it, and is reported once, not again for each qrels row naming it.
    """
    folder = Path(folder)
    if not is_beir_folder(folder):
        raise InputNotFoundError(f"{folder}: not a BEIR folder (needs corpus.jsonl, queries.jsonl, qrels/)")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise InputNotFoundError(f"{qrels_path}: no such qrels split (have: {', '.join(splits_of(folder))})")
    data = BeirData(folder=folder, split=split)
    data.corpus, bad_docs = _read_id_text(folder / "corpus.jsonl", data.errors)
    data.errors.extend(bad_docs.values())
    all_queries, bad_queries = _read_id_text(folder / "queries.jsonl", data.errors)
    reported: set[str] = set()
    for item in read_tsv(qrels_path):
        if isinstance(item, RecordError):
            data.errors.append(item)
            continue
        row = item.value
        qid, did, score = row.get("query-id"), row.get("corpus-id"), as_number(row.get("score"))
        if qid is None or did is None:
            data.errors.append(RecordError(qrels_path, item.line, None, "header must be 'query-id corpus-id score'"))
        elif qid in bad_queries:
            if qid not in reported:
                data.errors.append(bad_queries[qid])
                reported.add(qid)
        elif qid not in all_queries:
            data.errors.append(RecordError(qrels_path, item.line, "query-id", f"unknown query id {qid!r}"))
        elif did in bad_docs:
            continue  # the passage itself is reported above
        elif did not in data.corpus:
            data.errors.append(RecordError(qrels_path, item.line, "corpus-id", f"unknown corpus id {did!r}"))
        elif score is None:
            data.errors.append(RecordError(qrels_path, item.line, "score", f"not a number: {row.get('score')!r}"))
        elif score > 0:
            data.qrels.setdefault(qid, {})[did] = score
    data.queries = {qid: all_queries[qid]["text"] for qid in data.qrels}
    data.query_fields = {qid: all_queries[qid] for qid in data.qrels}
    if not data.qrels and not data.errors:
        data.errors.append(RecordError(qrels_path, 1, None, "no relevant pairs in qrels"))
    return data


def load_beir(folder: str | Path, split: str, skip_invalid: bool = False) -> BeirData:
    """A checked BEIR split. Structural problems (bad JSON, unknown or duplicate ids) refuse the load
    unless `skip_invalid`; passages and queries with empty text are always skipped with a warning, as
    they hold nothing to learn or find (the shared 10-K set has one of each)."""
    data = collect_beir(folder, split)
    blocking = [e for e in data.errors if e.message != EMPTY_TEXT]
    if (blocking and not skip_invalid) or not data.qrels:
        raise DataError(data.errors)
    if fresh := first_reports(data.errors):  # once per bad record and process, not once per split read
        log.warning("%s: %s", folder, summarize_skips(fresh))
    return data
