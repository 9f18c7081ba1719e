"""A retrieval check in another style of text: XBRL term -> its one-sentence explanation.

Fine-tuning on 10-K questions can make a model forget general language; the judged set includes
forum-style answers. This small set, built from the shared FinLoRA XBRL-terminology file, shows it:
short taxonomy terms as queries, definitions as passages (the queried terms' own plus distractors).
About 1,500 short texts: seconds to score. Scored beside the grouped validation in the card and
metrics, and by `fintune embed eval --style-check`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from fintune.data.beir import BeirData

QUERIES = 300
PASSAGES = 1200
PROMPT = re.compile(r"^Explain this XBRL term briefly in one sentence:\s*(.*?)\s*Answer:\s*$", re.S)
NAME = "xbrl_term style check"


def style_check_path(root: Path | None = None) -> Path:
    from fintune.data.tasks import get_task

    return get_task("xbrl_term").path("train", root)


def style_check_data(path: Path | None = None, queries: int = QUERIES, passages: int = PASSAGES) -> BeirData | None:
    """The check set, or None when the XBRL file is not there. Deterministic: records are picked by a hash
    of the term, so the same file always gives the same set."""
    path = path or style_check_path()
    if not path.is_file():
        return None
    terms: dict[str, str] = {}  # term -> explanation; first one wins
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        match = PROMPT.match(record.get("context", ""))
        target = (record.get("target") or "").strip()
        if match and target and match[1] not in terms:
            terms[match[1]] = target
    explanations = sorted(set(terms.values()), key=_hash)
    doc_id = {text: f"x{i}" for i, text in enumerate(explanations)}
    # a query's explanation must be its own: skip terms that share one with another term
    counts: dict[str, int] = {}
    for text in terms.values():
        counts[text] = counts.get(text, 0) + 1
    chosen = sorted((t for t in terms if counts[terms[t]] == 1), key=_hash)[:queries]
    relevant = {doc_id[terms[t]] for t in chosen}
    others = [t for t in explanations if doc_id[t] not in relevant][: max(0, passages - len(relevant))]
    kept = [t for t in explanations if doc_id[t] in relevant] + others
    corpus = {doc_id[t]: {"title": "", "text": t} for t in kept}
    data = BeirData(folder=path, split=NAME)
    data.corpus = corpus
    data.queries = {f"t{i}": t for i, t in enumerate(chosen)}
    data.qrels = {f"t{i}": {doc_id[terms[t]]: 1.0} for i, t in enumerate(chosen)}
    data.query_fields = {q: {"_id": q, "text": t} for q, t in data.queries.items()}
    return data


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()
