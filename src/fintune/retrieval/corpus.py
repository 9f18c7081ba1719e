"""Documents to index: a BEIR folder's corpus.jsonl or any JSONL/JSON/CSV/Parquet file of records.

Each record needs an id (`_id` or `id`) and a text (`text` or `content`); `title` is prepended to the
text as the evaluation does, and every other scalar field becomes filterable metadata.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fintune.data.beir import is_beir_folder
from fintune.data.errors import DataError, RecordError, summarize_skips
from fintune.data.readers import read_rows
from fintune.log import first_reports

log = logging.getLogger(__name__)

ID_FIELDS = ("_id", "id")
TEXT_FIELDS = ("text", "content")


@dataclass(frozen=True)
class CorpusDoc:
    id: str
    text: str
    metadata: dict[str, Any]

    @property
    def content_hash(self) -> str:
        """What a re-run compares to skip unchanged documents (text and metadata both count)."""
        payload = json.dumps([self.text, self.metadata], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


@dataclass
class Corpus:
    source: Path
    docs: list[CorpusDoc]
    errors: list[RecordError] = field(default_factory=list)

    @property
    def metadata_fields(self) -> list[str]:
        return sorted({k for d in self.docs for k in d.metadata})


def corpus_file(path: str | Path) -> Path:
    path = Path(path)
    return path / "corpus.jsonl" if is_beir_folder(path) else path


def read_corpus(path: str | Path, skip_invalid: bool = False) -> Corpus:
    """Every document of `path`, checked: a missing or duplicate id, or a missing or empty text, refuses
    the whole corpus (all problems listed) unless `skip_invalid`, which skips them and says how many."""
    source = corpus_file(path)
    corpus = Corpus(source, [])
    seen: set[str] = set()
    for item in read_rows(source):
        if isinstance(item, RecordError):
            corpus.errors.append(item)
            continue
        doc = _document(source, item.line, item.value, corpus.errors)
        if doc is None:
            continue
        if doc.id in seen:
            corpus.errors.append(RecordError(source, item.line, "_id", f"duplicate id {doc.id!r}"))
            continue
        seen.add(doc.id)
        corpus.docs.append(doc)
    if corpus.errors and not skip_invalid:
        raise DataError(corpus.errors, total=len(corpus.docs) + len(corpus.errors))
    if fresh := first_reports(corpus.errors):  # once per bad record and process, not once per read
        log.warning("%s: %s", source, summarize_skips(fresh))
    if not corpus.docs:
        raise DataError([RecordError(source, 1, None, "no records with an id and a text")])
    return corpus


def _document(source: Path, line: int, rec: Any, errors: list[RecordError]) -> CorpusDoc | None:
    if not isinstance(rec, dict):
        errors.append(RecordError(source, line, None, "expected an object with an id and a text"))
        return None
    id_key = next((k for k in ID_FIELDS if k in rec), None)
    text_key = next((k for k in TEXT_FIELDS if k in rec), None)
    doc_id = rec.get(id_key) if id_key else None
    if doc_id is None or str(doc_id).strip() == "":
        errors.append(RecordError(source, line, "_id", "missing id (give _id or id)"))
        return None
    text = rec.get(text_key) if text_key else None
    if not isinstance(text, str) or not text.strip():
        errors.append(RecordError(source, line, text_key or "text", "empty text" if text_key else "missing field"))
        return None
    title = rec.get("title") or ""
    if isinstance(title, str) and title and not text.startswith(title):
        text = f"{title}. {text}"
    skip = {id_key, text_key}
    metadata = {k: v for k, v in rec.items() if k not in skip and isinstance(v, str | int | float | bool) and v != ""}
    return CorpusDoc(str(doc_id), text, metadata)
