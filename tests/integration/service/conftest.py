"""The service against a real PostgreSQL: FINTUNE_PG_URL if set, else one started here; a database per test."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fintune.service.app import PREFIX, Settings, create_app
from tests.conftest import write_jsonl
from tests.integration.conftest import fresh_database

TOKEN = "integration-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session")
def tiny_beir(beir_slice, tmp_path_factory) -> Path:
    """The 10-K slice cut to 8 dev and 32 train queries, their passages and 24 distractors: the service's
    tests check mechanics on real text, and before/after scoring must stay a few seconds on a busy CPU."""
    qrels = {split: (beir_slice / "qrels" / f"{split}.tsv").read_text().splitlines() for split in ("dev", "train")}
    keep = {"dev": 8, "train": 32}
    picked: dict[str, list[str]] = {}
    wanted: set[str] = set()
    for split, lines in qrels.items():
        rows = [line.split("\t") for line in lines[1:]]
        queries = list(dict.fromkeys(r[0] for r in rows))[: keep[split]]
        picked[split] = [line for line, r in zip(lines[1:], rows, strict=True) if r[0] in queries]
        wanted |= {r[1] for r in rows if r[0] in queries}
    corpus = [json.loads(line) for line in (beir_slice / "corpus.jsonl").read_text().splitlines()]
    distractors = [d["_id"] for d in corpus if d["_id"] not in wanted][:24]
    wanted |= set(distractors)
    query_ids = {line.split("\t")[0] for lines in picked.values() for line in lines}
    queries = [json.loads(line) for line in (beir_slice / "queries.jsonl").read_text().splitlines()]
    root = tmp_path_factory.mktemp("service_data") / "tiny_10k"
    write_jsonl(root / "corpus.jsonl", [d for d in corpus if d["_id"] in wanted])
    write_jsonl(root / "queries.jsonl", [q for q in queries if q["_id"] in query_ids])
    (root / "qrels").mkdir()
    for split, lines in picked.items():
        (root / "qrels" / f"{split}.tsv").write_text("\n".join([qrels[split][0], *lines]) + "\n")
    return root


@pytest.fixture(scope="session")
def service_pg_url(pg_url: str) -> str:
    return pg_url


@pytest.fixture
def service_db(service_pg_url, request) -> Iterator[str]:
    with fresh_database(service_pg_url, request.node.name, "svc_") as url:
        yield url


@pytest.fixture
def make_client(service_db, tmp_path, monkeypatch) -> Callable[..., TestClient]:
    """`with make_client(roots, workers=N) as client:` the app with its lifespan (pool, schema, worker)."""
    monkeypatch.setenv("FINTUNE_HOME", str(tmp_path / "home"))

    @contextmanager
    def make(roots: list[Path], workers: int = 0) -> Iterator[TestClient]:
        settings = Settings(service_db, TOKEN, tmp_path / "home", roots, workers=workers, poll_s=0.5, heartbeat_s=1)
        with TestClient(create_app(settings)) as client:
            client.headers.update(AUTH)
            yield client

    return make


def wait_for(client: TestClient, task_id: int, statuses: set[str], timeout_s: float = 120) -> dict:
    """Poll the task until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout_s
    while True:
        task = client.get(f"{PREFIX}/{task_id}").json()
        if task["status"] in statuses or time.monotonic() > deadline:
            return task
        time.sleep(0.3)


def wait_healthy(client: TestClient, timeout_s: float = 20) -> dict:
    """/healthz once it answers 200 (the worker registers a moment after the app starts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get("/healthz", headers={"Authorization": ""})
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return response.json()
        time.sleep(0.2)
