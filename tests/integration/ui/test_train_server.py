"""The Train tab with `--server`: training as a task of a real `fintune serve` (one worker, real PostgreSQL,
a bearer token required), driven through the tab's own functions. Real MiniLM on 10-K QA text cut small:
a 2-step task to `succeeded` with progress, loss, log and before/after metrics on the tab; a longer one
re-attached to by a "reloaded page" and stopped from the tab, ending `canceled` with no artefact."""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path

import pytest

from fintune.errors import UsageError
from fintune.ui import train_server
from tests.integration.service.conftest import tiny_beir  # noqa: F401 (fixture: the 10-K slice cut to 40 queries)
from tests.integration.serving.conftest import TOKEN

pytestmark = pytest.mark.slow

# as the service's training tests: few short pairs, no mined negatives, no grouping, no XBRL check
QUICK = "epochs=1 batch_size=4 max_seq_length=128 validation_group_by=none style_check=false hard_negatives=0"
WAIT_S = 300  # ~15 s on a quiet 2-core machine; a shared one is many times slower


def _poll(url: str, task_id: str, until: str) -> tuple[dict, list[dict], list[dict]]:
    """Poll as the tab's timer does until `until` holds; returns the last record and events, and every status seen."""
    seen = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        task, events = train_server.fetch(url, TOKEN, task_id)
        info = train_server.status(task, events)
        seen.append(info)
        done = info["state"] in train_server.FINISHED
        if done or (until == "stepped" and info["step"] >= 1):
            return task, events, seen
        time.sleep(0.3)
    raise AssertionError(f"task {task_id} still {seen[-1]['state']} after {WAIT_S} s")


def test_the_tab_trains_watches_and_stops_service_tasks(serve, tiny_beir, monkeypatch) -> None:  # noqa: F811
    monkeypatch.delenv(train_server.TOKEN_ENV, raising=False)
    options = {"workers": 1, "poll_s": 0.5, "heartbeat_s": 1, "token_required": True}
    with serve([tiny_beir.parent], **options) as url:
        with pytest.raises(UsageError, match="HTTP 401"):
            train_server.submit(url, "", "embed", "", "", tiny_beir.name, QUICK)
        with pytest.raises(UsageError, match="key=value"):
            train_server.submit(url, TOKEN, "llm", "", "", "", "--task fpb")

        first = train_server.submit(url, TOKEN, "embed", "", "", tiny_beir.name, f"{QUICK} max_steps=2")
        task, events, seen = _poll(url, first, "finished")
        assert task["status"] == "succeeded", task["error"]
        text, curve, tail = train_server.view(url, TOKEN, first)
        info = seen[-1]
        assert (info["state"], info["step"], info["total"]) == ("succeeded", 2, 2)
        assert text.startswith("**succeeded** · step 2/2 · elapsed ")
        ran = datetime.fromisoformat(task["finished_at"]) - datetime.fromisoformat(task["started_at"])
        assert info["elapsed_s"] == pytest.approx(ran.total_seconds(), abs=0.1)
        # 2 steps < the trainer's logging interval: the one loss point is the run's mean, logged at step 2
        points = curve.to_dict("records")
        assert [(p["step"], p["series"]) for p in points] == [(2, "train_loss")]
        assert math.isfinite(points[0]["loss"]) and points[0]["loss"] > 0
        logged = [e for e in events if e["kind"] == "log"]
        assert logged and tail.splitlines()[-1] == f"{logged[-1]['data']['level']} {logged[-1]['data']['message']}"
        before, after = task["metrics_before"]["ndcg@10"], task["metrics_after"]["ndcg@10"]
        assert f"| ndcg@10 | {before:.4f} | {after:.4f} |" in text
        assert train_server.active_task(url, TOKEN) == ""  # nothing left to re-attach to
        task_first = task

        second = train_server.submit(
            url, TOKEN, "embed", "", "", tiny_beir.name, f"{QUICK} eval_split=none max_steps=200"
        )
        monkeypatch.setenv(train_server.TOKEN_ENV, TOKEN)
        assert train_server.active_task(url, "") == second  # a reloaded page (no token typed yet) re-attaches
        task, _, seen = _poll(url, second, "stepped")
        assert task["status"] == "running" and 1 <= seen[-1]["step"] < 200 and seen[-1]["total"] == 200
        stopped = train_server.cancel(url, TOKEN, second)
        assert stopped == {"task": int(second), "status": "canceled", "artifact_path": None}
        text, _, _ = train_server.view(url, TOKEN, second)
        assert text.startswith("**canceled** · step ")
        with pytest.raises(UsageError, match="nothing to cancel"):
            train_server.cancel(url, TOKEN, second)
    artefact = Path(task_first["artifact_path"])
    assert artefact.name == first and (artefact / "fintune_metrics.json").is_file()
    assert not (artefact.parent / second).exists()  # the stopped task wrote no artefact, not even a partial one
