"""Integration fixtures: small slices of the real shared data, the real default models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fintune.data.beir import load_beir
from fintune.data.tasks import get_task
from tests.conftest import write_jsonl


@pytest.fixture(scope="session")
def beir_slice(tmp_path_factory, shared_data) -> Path:
    """The first 40 judged dev queries of Financial-QA-10K with their passages and 400 distractors."""
    src = get_task("financial_qa_10k").path("dev", root=shared_data)
    data = load_beir(src, "dev", skip_invalid=True)
    qids = list(data.qrels)[:40]
    wanted = {d for q in qids for d in data.qrels[q]} | set(list(data.corpus)[:400])
    root = tmp_path_factory.mktemp("beir_slice")
    write_jsonl(root / "corpus.jsonl", [data.corpus[d] for d in data.corpus if d in wanted])
    write_jsonl(root / "queries.jsonl", [{"_id": q, "text": data.queries[q]} for q in qids])
    (root / "qrels").mkdir()
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q in qids for d in data.qrels[q]]
    (root / "qrels" / "dev.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def fpb_dev_rows(shared_data) -> list[dict]:
    path = get_task("fpb").path("dev", root=shared_data)
    return [json.loads(line) for line in path.read_text().splitlines()[:24]]
