"""Integration fixtures: small slices of the real shared data, the real default models."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fintune.data.beir import load_beir
from fintune.data.tasks import get_task
from tests import pg_local
from tests.conftest import write_jsonl


@pytest.fixture(scope="session")
def beir_slice(tmp_path_factory, shared_data) -> Path:
    """Financial-QA-10K cut small: 40 dev and 160 train queries, their passages and 400 distractors."""
    src = get_task("financial_qa_10k").path("dev", root=shared_data)
    splits = {"dev": load_beir(src, "dev"), "train": load_beir(src, "train")}
    picked = {"dev": list(splits["dev"].qrels)[:40], "train": list(splits["train"].qrels)[:160]}
    corpus = splits["dev"].corpus
    wanted = {d for name, qids in picked.items() for q in qids for d in splits[name].qrels[q]}
    wanted |= set(list(corpus)[:400])
    root = tmp_path_factory.mktemp("beir_slice")
    write_jsonl(root / "corpus.jsonl", [corpus[d] for d in corpus if d in wanted])
    queries = [{"_id": q, "text": splits[name].queries[q]} for name, qids in picked.items() for q in qids]
    write_jsonl(root / "queries.jsonl", queries)
    (root / "qrels").mkdir()
    for name, qids in picked.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q in qids for d in splits[name].qrels[q]]
        (root / "qrels" / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def fpb_dev_rows(shared_data) -> list[dict]:
    path = get_task("fpb").path("dev", root=shared_data)
    return [json.loads(line) for line in path.read_text().splitlines()[:24]]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A real PostgreSQL + pgvector: FINTUNE_PG_URL if set (CI starts one), else one started here."""
    if os.environ.get("FINTUNE_PG_URL"):
        yield os.environ["FINTUNE_PG_URL"]
        return
    # under /tmp itself: the server's unprivileged user cannot enter pytest's private temporary folders
    folder = tempfile.mkdtemp(prefix="fintune-pg-")
    url = pg_local.start(folder)
    yield url
    pg_local.stop(folder)
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def fresh_database(pg_url: str, test_name: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the server of `pg_url` for one test (named after it), dropped after."""
    import re

    name = prefix + re.sub(r"[^a-z0-9]", "_", test_name.lower())[:50]
    pg_local.psql(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_local.psql(pg_url, f'CREATE DATABASE "{name}"')
    try:
        yield pg_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        pg_local.psql(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
