"""Validation by held-out groups: whole companies (or any metadata field) kept out of training.

A random dev split of the 10-K QA set shares its companies with train, so it flatters a model that
memorised those companies; the judged set is other companies. Holding out whole groups predicts that:
the held-out groups' training queries become the validation queries (none of them is trained on), and
every passage stays in the validation corpus (the held-out groups' passages are also kept out of
hard-negative mining, so training never sees them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from fintune.data.beir import BeirData
from fintune.errors import UsageError

AUTO_GROUP_FIELD = "ticker"  # grouped validation turns on by itself when the queries or passages carry it
OFF = "none"


@dataclass
class GroupedSplit:
    train: BeirData  # the training groups' queries (corpus: every passage)
    validation: BeirData  # the held-out groups' queries (corpus: every passage)
    field: str
    held_out: list[str]
    groups: int  # distinct groups in the split
    mining_rows: list[int]  # positions (in corpus order) of the passages outside the held-out groups
    mining_corpus: list[str]  # their texts: where hard negatives come from

    def describe(self) -> str:
        return (
            f"grouped validation: {len(self.held_out)} of {self.groups} '{self.field}' groups held out of training "
            f"({', '.join(self.held_out)}): {len(self.validation.queries)} validation queries, "
            f"{len(self.train.queries)} training queries, all {len(self.validation.corpus)} passages searched"
        )


def query_group(data: BeirData, qid: str, field: str) -> str | None:
    """The query's own `field`, else that of its relevant passages (when they agree)."""
    value = data.query_fields.get(qid, {}).get(field)
    if value not in (None, ""):
        return str(value)
    values = {str(data.corpus[d].get(field)) for d in data.qrels[qid] if data.corpus[d].get(field) not in (None, "")}
    return values.pop() if len(values) == 1 else None


def has_group_field(data: BeirData, field: str) -> bool:
    """True when every judged query has a group under `field` (its own or its passage's)."""
    return bool(data.qrels) and all(query_group(data, q, field) is not None for q in data.qrels)


DEFAULT_GROUPS = 10


def grouped_split(data: BeirData, field: str, groups: int | None = None, seed: int = 42) -> GroupedSplit:
    """Hold out `groups` whole groups of `field` (chosen by `seed`) from `data`'s judged queries
    (default: 10, at most a fifth of the groups, at least one)."""
    missing = [q for q in data.qrels if query_group(data, q, field) is None]
    if missing:
        raise UsageError(
            f"{data.folder}: grouped validation by '{field}': {len(missing)} of {len(data.qrels)} {data.split} "
            f"queries have no '{field}' (on the query or its passage), e.g. query {missing[0]!r}; "
            f"name a field every query has (validation_group_by) or turn it off (validation_group_by: {OFF})"
        )
    by_query = {q: query_group(data, q, field) for q in data.qrels}
    names = sorted({g for g in by_query.values() if g is not None})
    if groups is None:
        groups = max(1, min(DEFAULT_GROUPS, len(names) // 5))
    if groups < 1 or groups >= len(names):
        raise UsageError(
            f"{data.folder}: validation_groups {groups} must be between 1 and {len(names) - 1}: "
            f"the {data.split} split has {len(names)} '{field}' groups and training needs at least one"
        )
    held = sorted(random.Random(seed).sample(names, groups))
    held_set = set(held)
    val_ids = {q for q, g in by_query.items() if g in held_set}

    def subset(ids: set[str], split: str) -> BeirData:
        return replace(
            data,
            split=split,
            queries={q: t for q, t in data.queries.items() if q in ids},
            qrels={q: r for q, r in data.qrels.items() if q in ids},
            query_fields={q: r for q, r in data.query_fields.items() if q in ids},
            errors=[],
        )

    val_docs = {d for q in val_ids for d in data.qrels[q]}
    train_docs = {d for q in set(data.qrels) - val_ids for d in data.qrels[q]}
    # a training query's passage is always minable (a few shared passages carry another company's field)
    rows = [
        i
        for i, (d, doc) in enumerate(data.corpus.items())
        if d in train_docs
        or (str(doc.get(field)) not in held_set and not (doc.get(field) in (None, "") and d in val_docs))
    ]
    ids = list(data.corpus)
    return GroupedSplit(
        train=subset(set(data.qrels) - val_ids, data.split),
        validation=subset(val_ids, f"{data.split} held-out {field}s"),
        field=field,
        held_out=held,
        groups=len(names),
        mining_rows=rows,
        mining_corpus=[data.doc_text(ids[i]) for i in rows],
    )


def resolve_group_field(requested: str | None, data: BeirData) -> str | None:
    """The field to group by: the one asked for, `ticker` when not asked and the data have it, None when off."""
    if requested == OFF:
        return None
    if requested:
        return requested
    return AUTO_GROUP_FIELD if has_group_field(data, AUTO_GROUP_FIELD) else None


def training_pairs(split: BeirData) -> tuple[list[str], list[str]]:
    anchors, positives = [], []
    for qid, relevant in split.qrels.items():
        for doc_id in relevant:
            anchors.append(split.queries[qid])
            positives.append(split.doc_text(doc_id))
    return anchors, positives


def anchor_groups(split: BeirData, field: str) -> dict[str, str]:
    """Each judged query's text -> its group under `field` (its own, else its passages'; batch_group_by)."""
    groups = {q: query_group(split, q, field) for q in split.qrels}
    missing = [q for q, g in groups.items() if g is None]
    if missing:
        raise UsageError(
            f"{split.folder}: batch_group_by '{field}': {len(missing)} {split.split} queries have no such field "
            f"(first: {missing[0]}), nor one passage value; name a field every query has"
        )
    return {split.queries[q]: str(g) for q, g in groups.items()}
