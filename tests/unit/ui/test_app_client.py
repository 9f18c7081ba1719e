"""Each tab's functions through the served app (gradio_client), on tiny models and a tiny store."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from gradio_client import Client

from fintune.retrieval.search import open_collection
from fintune.retrieval.stores.embedded import EmbeddedStore
from fintune.ui import train
from fintune.ui.app import TABS
from tests.conftest import write_jsonl
from tests.unit.llm.conftest import make_tiny_llm
from tests.unit.ui.conftest import tiny_beir_folder

SENTIMENT = ("negative", "neutral", "positive")


@pytest.fixture(scope="module")
def client(ui_url) -> Client:
    return Client(ui_url, verbose=False)


def test_the_page_has_the_four_tabs_in_order(client) -> None:
    labels = [c["props"].get("label") for c in client.config["components"] if c["type"] in ("tab", "tabitem")]
    assert labels == list(TABS) == ["Playground", "Search", "Train", "Evaluate"]


def test_search_ranks_like_the_library_and_filters_by_metadata(client, tiny_store) -> None:
    query = "How much revenue did Company7 report?"
    table = client.predict(tiny_store, "docs", query, 5, "", False, api_name="/search")
    rows = [dict(zip(table["headers"], r, strict=True)) for r in table["data"]]
    store = EmbeddedStore(tiny_store)
    try:
        expected = open_collection(store, "docs").search([query], 5)[0]  # what `fintune search` prints
    finally:
        store.close()
    assert [r["id"] for r in rows] == [h.id for h in expected]
    assert [r["score"] for r in rows] == pytest.approx([h.score for h in expected], abs=1e-6)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    filtered = client.predict(tiny_store, "docs", query, 5, "sector=energy", False, api_name="/search")
    sectors = {json.loads(r[filtered["headers"].index("metadata")])["sector"] for r in filtered["data"]}
    assert sectors == {"energy"}


def test_a_user_error_reaches_the_page_as_its_message(client, tiny_store) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="type a query"):
        client.predict(tiny_store, "docs", "  ", 5, "", False, api_name="/search")


def test_two_collections_side_by_side_each_rank_with_their_own_model(client, tiny_store) -> None:
    query = "Which company opened 3 new stores?"
    left, right = client.predict(tiny_store, "docs", "docs48", query, 4, "", False, api_name="/search_pair")
    store = EmbeddedStore(tiny_store)
    try:
        for table, name in ((left, "docs"), (right, "docs48")):
            expected = open_collection(store, name).search([query], 4)[0]
            assert [r[table["headers"].index("id")] for r in table["data"]] == [h.id for h in expected]
    finally:
        store.close()
    assert client.predict(tiny_store, api_name="/collections")["choices"][0][0] in ("docs", "docs48")


def test_playground_answers_with_the_parsed_label_and_latency(client, tmp_path) -> None:
    base = str(make_tiny_llm(tmp_path / "tiny_llm"))
    table = client.predict("fpb", "profit rose", "positive", "", base, api_name="/compare")
    (row,) = [dict(zip(table["headers"], r, strict=True)) for r in table["data"]]
    from fintune.metrics.classification import first_label

    parsed = first_label(row["answer"], SENTIMENT) or "(no label)"  # llm eval's parsing of the same answer
    assert row["parsed"] == parsed
    assert row["correct"] == ("✓" if parsed == "positive" else "✗")
    assert row["gold"] == "positive" and row["latency_ms"] > 0


@pytest.mark.slow  # a real `fintune embed train` subprocess: about 25 s on 2 busy cores, mostly its imports
def test_a_reloaded_page_finds_the_running_job_and_stop_leaves_nothing(client, ui_url, tmp_path, tiny_bert_dir) -> None:
    beir = tiny_beir_folder(tmp_path / "beir")
    output = tmp_path / "out"
    overrides = f"--model {tiny_bert_dir} --no-eval --epochs 50 --batch-size 8"
    job_id = client.predict("embed", "", "", str(beir), str(output), overrides, api_name="/start")
    assert Client(ui_url, verbose=False).predict(api_name="/running_job") == job_id  # a new page re-attaches
    pid = train.JOBS[job_id].process.pid
    deadline = time.monotonic() + 60
    while not train.read_progress(train.JOBS[job_id].progress) and time.monotonic() < deadline:
        time.sleep(0.5)
    info = train.status(job_id)
    assert info["state"] == "running" and info["step"] >= 1 and info["total"] == 100  # 50 epochs x 2 batches
    result = client.predict(job_id, api_name="/stop")
    assert result == {
        "job": job_id,
        "stopped": True,
        "process_gone": True,
        "output_exists": False,
        "removed_partial": [],
    }
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not output.exists() and not list(tmp_path.glob(".out.tmp-*"))
    assert train.status(job_id)["state"] == "stopped"


def test_batch_mode_writes_one_prediction_per_record_and_model(client, tmp_path) -> None:
    from gradio_client import handle_file

    from fintune.metrics.classification import first_label

    base = str(make_tiny_llm(tmp_path / "tiny_llm"))
    rows = [
        {"id": "a", "text": "profit rose", "label": "positive"},
        {"id": "b", "text": "sales fell", "label": "negative"},
    ]
    records = write_jsonl(tmp_path / "records.jsonl", rows)
    path = client.predict("fpb", handle_file(str(records)), "", base, 0, api_name="/batch")
    lines = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    assert [(p["id"], p["model"], p["gold"]) for p in lines] == [(0, "base", "positive"), (1, "base", "negative")]
    assert all(p["parsed"] == (first_label(p["answer"], SENTIMENT) or "(no label)") for p in lines)
    assert "Input: sales fell" in lines[1]["prompt"]
