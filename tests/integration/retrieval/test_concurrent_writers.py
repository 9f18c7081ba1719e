"""Several real `fintune index` processes writing one collection at once, in the embedded store and PostgreSQL.

A start gate (see index_writer) makes the writers begin indexing at the same moment, so their batches
interleave. However they interleave, each id must be stored once, the catalog must count the rows, every
writer must finish, and together they must report each document added exactly once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from psycopg import sql

from fintune.cli.main import main
from fintune.data.tasks import get_task
from fintune.retrieval.search import open_collection
from fintune.retrieval.stores import open_store
from fintune.retrieval.stores.base import Store
from fintune.retrieval.stores.embedded import EmbeddedStore
from tests.unit.conftest import build_tiny_bert

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
DOCS = 150
BATCH = 8  # small batches: many lock turns per writer
WAIT_S = 300  # imports and model loading on a busy machine
REPORT = re.compile(r"(\d+) added, (\d+) updated, (\d+) unchanged")


@pytest.fixture(scope="module")
def small_beir(tmp_path_factory, shared_data) -> Path:
    """The first 150 passages (and 10 queries) of the real Financial-QA-10K corpus, as a BEIR folder."""
    source = get_task("financial_qa_10k").path("dev", root=shared_data)
    folder = tmp_path_factory.mktemp("beir150")
    for name, count in (("corpus.jsonl", DOCS), ("queries.jsonl", 10)):
        with (source / name).open(encoding="utf-8") as f:
            (folder / name).write_text("".join(next(f) for _ in range(count)), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_bert(tmp_path_factory.mktemp("tiny_bert")))


@pytest.fixture(params=["embedded", "pgvector"])
def store_url(request, tmp_path) -> str:
    return str(tmp_path / "store") if request.param == "embedded" else request.getfixturevalue("pg_database")


def _index_args(store_url: str, corpus: Path, model: str) -> list[str]:
    return ["index", "--model", model, "--corpus", str(corpus), "--store", store_url, "--collection", "c",
            "--batch-size", str(BATCH)]  # fmt: skip


class Writer:
    """One index_writer process; its output is read as it comes (to see when it waits for a lock)."""

    def __init__(self, gate: Path, mode: str, args: list[str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.retrieval.index_writer", str(gate), mode, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout or []), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return " ".join("".join(self.lines).split())  # the console may wrap long lines

    def wait_for_output(self, text: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while text not in self.output:
            assert self.proc.poll() is None, f"the writer exited before printing {text!r}: {self.output[-2000:]}"
            assert time.monotonic() < deadline, f"{text!r} not printed in {WAIT_S} s"
            time.sleep(0.05)

    def finish(self) -> tuple[int, str]:
        try:
            code = self.proc.wait(WAIT_S)
        finally:
            self.proc.kill()
        self._reader.join(10)
        return code, self.output


def _wait_for(pattern: str, folder: Path, count: int, writers: list[Writer]) -> None:
    deadline = time.monotonic() + WAIT_S
    while len(list(folder.glob(pattern))) < count:
        dead = [w for w in writers if w.proc.poll() is not None]
        assert not dead, f"a writer exited early: {dead[0].output[-2000:]}"
        assert time.monotonic() < deadline, f"{pattern} not seen in {WAIT_S} s"
        time.sleep(0.05)


def _report(output: str) -> tuple[int, int, int]:
    match = REPORT.search(" ".join(output.split()))  # the console may wrap the summary line
    assert match, output[-2000:]
    added, updated, unchanged = map(int, match.groups())
    return added, updated, unchanged


def _stored_ids(store: Store, name: str) -> list[str]:
    if isinstance(store, EmbeddedStore):
        return store.table(name).to_arrow()["id"].to_pylist()
    with store.conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(sql.SQL("SELECT langchain_id FROM {}").format(sql.Identifier(name)))
        return [r[0] for r in cur.fetchall()]


def _assert_each_id_once(store_url: str, corpus: Path) -> None:
    expected = sorted(json.loads(line)["_id"] for line in (corpus / "corpus.jsonl").read_text().splitlines())
    store = open_store(store_url)
    try:
        info = store.catalog.resolve("c")
        ids = _stored_ids(store, info.name)
        assert sorted(ids) == expected  # each id exactly once
        assert info.documents == store.count(info.name) == DOCS  # the catalog counts the rows
        assert info.status == "ready" and [v.name for v in store.catalog.versions("c")] == ["c_v1"]
        hits = open_collection(store, "c").search(["revenue growth of the company"], k=10)[0]
        assert len({h.id for h in hits}) == 10  # no passage returned twice
    finally:
        store.close()


def test_concurrent_writers_store_each_id_once_and_report_it_added_once(store_url, small_beir, tiny_model, tmp_path):
    gate = tmp_path / "gate"
    writers = [Writer(gate, "run", _index_args(store_url, small_beir, tiny_model)) for _ in range(3)]
    _wait_for("ready-*", tmp_path, len(writers), writers)
    gate.touch()
    started = time.monotonic()
    results = [w.finish() for w in writers]
    print(f"{len(writers)} writers indexed {DOCS} docs in {time.monotonic() - started:.1f} s after the gate")
    assert [code for code, _ in results] == [0] * len(writers), [out[-2000:] for _, out in results]
    reports = [_report(out) for _, out in results]
    assert sum(r[0] for r in reports) == DOCS  # each document reported added by exactly one writer
    assert sum(r[1] for r in reports) == 0 and sum(r[2] for r in reports) == DOCS * (len(writers) - 1)
    _assert_each_id_once(store_url, small_beir)


def test_a_writer_killed_mid_batch_lets_the_other_finish_and_a_rerun_completes(
    store_url, small_beir, tiny_model, tmp_path, capsys
):
    args = _index_args(store_url, small_beir, tiny_model)
    victim_gate, other_gate = tmp_path / "go-victim", tmp_path / "go-other"
    victim, other = Writer(victim_gate, "stall", args), Writer(other_gate, "run", args)
    try:
        _wait_for("ready-*", tmp_path, 2, [victim, other])
        victim_gate.touch()
        _wait_for("stalled", tmp_path, 1, [victim, other])  # half a batch written, the lock held
        other_gate.touch()
        other.wait_for_output("waiting for it")  # blocked by the victim's lock
        victim.proc.send_signal(signal.SIGKILL)
        assert victim.proc.wait(30) == -signal.SIGKILL
    finally:
        victim.proc.kill()
    code, out = other.finish()
    assert code == 0, out[-2000:]
    added, updated, unchanged = _report(out)
    assert (added, updated, unchanged) == (DOCS - BATCH // 2, 0, BATCH // 2)  # the victim's half batch is kept
    _assert_each_id_once(store_url, small_beir)
    assert main(args) == 0  # the re-run: nothing left to do
    assert _report(capsys.readouterr().out) == (0, 0, DOCS)
    _assert_each_id_once(store_url, small_beir)


def test_stores_opened_at_once_set_up_their_catalog_once(store_url):
    """Concurrent set-up (catalog tables, pgvector extension) must not fail with 'already exists'."""
    threads, errors = 6, []
    barrier = threading.Barrier(threads)

    def open_and_close() -> None:
        barrier.wait()
        try:
            open_store(store_url).close()
        except Exception as exc:  # collected: an assertion in a thread would be lost
            errors.append(exc)

    workers = [threading.Thread(target=open_and_close) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert errors == []
    store = open_store(store_url)
    try:
        assert store.catalog.all() == []
    finally:
        store.close()
