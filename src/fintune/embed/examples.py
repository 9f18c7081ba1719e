"""Training examples for embedding models, from any supported source, as a `datasets.Dataset`.

Column order matters to sentence-transformers losses: (anchor, positive[, negative...]) for ranking
losses, (text1, text2, score) for scored pairs.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset

from fintune.data.beir import is_beir_folder, load_beir
from fintune.data.loading import load_records
from fintune.errors import UsageError

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    dataset: Dataset
    shape: str  # "pairs" (anchor, positive), "triplets", "scored" (text1, text2, score)
    source: str
    corpus: list[str] | None = None  # passages to mine hard negatives from (BEIR sources)
    skipped: int = 0
    splittable: bool = False  # whole documents (plain or labelled texts) that may be cut into pieces
    anchor_groups: dict[str, str] | None = None  # query text -> its group (batch_group_by)


def load_training_data(
    path: str | Path, fmt: str | None = None, split: str = "train", skip_invalid: bool = False, seed: int = 42
) -> TrainingData:
    path = Path(path)
    if is_beir_folder(path):
        return _from_beir(path, split, skip_invalid)
    records = load_records(path, fmt=fmt, skip_invalid=skip_invalid)
    rows, skipped = records.rows, len(records.errors)
    schema = records.schema
    if schema == "pairs":
        if all("score" in r for r in rows):
            ds = Dataset.from_dict(
                {
                    "text1": [r["text1"] for r in rows],
                    "text2": [r["text2"] for r in rows],
                    "score": [float(r["score"]) for r in rows],
                }
            )
            return TrainingData(ds, "scored", str(path), skipped=skipped)
        return _pairs([r["text1"] for r in rows], [r["text2"] for r in rows], str(path), skipped)
    if schema == "triplets":
        ds = Dataset.from_dict({k: [r[k] for r in rows] for k in ("anchor", "positive", "negative")})
        return TrainingData(ds, "triplets", str(path), skipped=skipped)
    if schema == "query-positive":
        return _query_positive(rows, str(path), skipped)
    if schema in ("documents", "labelled"):
        key = "content" if schema == "documents" else "text"
        out = _same_label_pairs(rows, key, str(path), skipped, seed)
        out.splittable = True
        return out
    if schema == "simple":
        texts = [r["text"] for r in rows]
        out = _pairs(texts, texts, str(path), skipped)  # SimCSE: dropout makes the two views differ
        out.splittable = True
        return out
    raise UsageError(
        f"{path}: format '{schema}' cannot train an embedding model "
        "(use pairs, triplets, query-positive, documents, labelled, simple or a BEIR folder)"
    )


def split_long_documents(data: TrainingData, tokenizer, max_tokens: int) -> int:
    """Plain texts and labelled documents: each long text becomes several pieces (labels kept).
    Returns how many texts were split. Query-passage data are left alone: a piece of a relevant
    passage need not answer the query."""
    from fintune.embed.chunking import split_by_tokens

    if data.shape != "pairs" or data.dataset.column_names != ["anchor", "positive"] or not data.splittable:
        return 0
    anchors, positives, split = [], [], 0
    for anchor, positive in zip(data.dataset["anchor"], data.dataset["positive"], strict=True):
        pieces_a = split_by_tokens(anchor, tokenizer, max_tokens)
        pieces_p = split_by_tokens(positive, tokenizer, max_tokens) if positive != anchor else pieces_a
        split += (len(pieces_a) > 1) + (positive != anchor and len(pieces_p) > 1)
        for i, piece in enumerate(pieces_a):
            anchors.append(piece)
            positives.append(pieces_p[min(i, len(pieces_p) - 1)])
    data.dataset = Dataset.from_dict({"anchor": anchors, "positive": positives})
    return split


def _pairs(anchors: list[str], positives: list[str], source: str, skipped: int = 0) -> TrainingData:
    return TrainingData(Dataset.from_dict({"anchor": anchors, "positive": positives}), "pairs", source, skipped=skipped)


def _from_beir(folder: Path, split: str, skip_invalid: bool) -> TrainingData:
    data = load_beir(folder, split, skip_invalid=skip_invalid)
    anchors, positives = [], []
    for qid, relevant in data.qrels.items():
        for doc_id in relevant:
            anchors.append(data.queries[qid])
            positives.append(data.doc_text(doc_id))
    corpus = [data.doc_text(d) for d in data.corpus]
    out = _pairs(anchors, positives, f"{folder} ({split})", len(data.errors))
    out.corpus = corpus
    return out


def _query_positive(rows: list[dict], source: str, skipped: int) -> TrainingData:
    given = [r.get("negatives", r.get("negative")) for r in rows]  # a text, a list of texts, or none
    negatives: list[list[str]] = [[n] if isinstance(n, str) else list(n or []) for n in given]
    count = min((len(n) for n in negatives), default=0)
    columns = {"anchor": [r.get("query", r.get("anchor")) for r in rows], "positive": [r["positive"] for r in rows]}
    if count:
        if any(len(n) != count for n in negatives):
            log.warning("%s: records have different numbers of negatives; using the first %d of each", source, count)
        for i in range(count):
            columns[f"negative_{i + 1}"] = [n[i] for n in negatives]
    return TrainingData(Dataset.from_dict(columns), "triplets" if count else "pairs", source, skipped=skipped)


def _same_label_pairs(rows: list[dict], key: str, source: str, skipped: int, seed: int) -> TrainingData:
    """Labelled documents become (document, another document of the same label) pairs."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if "label" not in row:
            raise UsageError(f"{source}: labelled documents need a 'label' on every record")
        by_label[str(row["label"])].append(row[key])
    rng = random.Random(seed)
    anchors, positives = [], []
    for texts in by_label.values():
        if len(texts) < 2:
            continue
        for i, text in enumerate(texts):
            j = rng.randrange(len(texts) - 1)
            anchors.append(text)
            positives.append(texts[j + (j >= i)])  # any other document of the label
    if not anchors:
        raise UsageError(f"{source}: no label has two documents; nothing to pair")
    return _pairs(anchors, positives, source, skipped)
