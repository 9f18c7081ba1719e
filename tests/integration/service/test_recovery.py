"""A worker killed with SIGKILL mid-training: its task is found stalled (no heartbeat) and finished by a
second worker from the last checkpoint; then the API process restarts and the task list is unchanged.

API and workers are separate processes sharing one PostgreSQL URL, as on several machines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.integration.service.test_processes import free_port, stop, wait_health
from tests.integration.service.test_training import QUICK

pytestmark = pytest.mark.slow
TOKEN = "recovery-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TIMING = ("--heartbeat-s", "1", "--stalled-s", "4")  # the lost worker is noticed in seconds, not minutes
STEPS, SAVE_EVERY = 10, 4
WAIT_S = 600  # a shared 2-core machine is many times slower than a quiet one


def spawn(args: list[str], env: dict[str, str], log: IO[str]) -> subprocess.Popen[str]:
    """`python -m fintune ARGS` in its own process group (so killing it kills nothing else); output to a
    file, since a full pipe nobody reads would block the trainer."""
    command = [sys.executable, "-m", "fintune", *args]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def get(url: str, params: dict[str, Any] | None = None) -> Any:
    response = httpx.get(url, params=params, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def complete_checkpoint(work: Path) -> int | None:
    """The newest checkpoint whose save finished (trainer_state.json is written last)."""
    steps = [int(p.name.split("-")[1]) for p in work.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(steps, default=None)


def test_sigkilled_worker_is_replaced_and_an_api_restart_loses_nothing(service_db, tiny_beir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("FINTUNE_DATABASE_URL", "FINTUNE_API_TOKEN")}
    env |= {"FINTUNE_HOME": str(tmp_path / "home"), "FINTUNE_API_TOKEN": TOKEN}
    artefacts = tmp_path / "home" / "service" / "artifacts"
    log = (tmp_path / "processes.log").open("w")
    serve_args = ["serve", "--workers", "0", "--database", service_db, "--data-root", str(tiny_beir.parent)]
    url = f"http://127.0.0.1:{free_port()}"
    serve = spawn([*serve_args, "--port", url.rsplit(":", 1)[1]], env, log)
    running: list[subprocess.Popen[str]] = [serve]
    try:
        wait_health(url, 503, serve)  # API and database up; no worker yet
        first = spawn(["worker", "--database", service_db, *TIMING], env, log)
        running.append(first)
        wait_health(url, 200, first)
        body = {"kind": "embedding", "data": tiny_beir.name, "idempotency_key": "sigkill-1",
                "config": {**QUICK, "eval_split": "none", "max_steps": STEPS, "save_steps": SAVE_EVERY}}  # fmt: skip
        created = httpx.post(f"{url}/v1/fine-tuning/tasks", json=body, headers=AUTH, timeout=30)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        task_url = f"{url}/v1/fine-tuning/tasks/{task_id}"

        work = artefacts / f".{task_id}.work"
        deadline = time.monotonic() + WAIT_S
        while (saved := complete_checkpoint(work)) is None:  # mid-training, past a finished checkpoint
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "processes.log").read_text()
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # its own group only: the worker and nothing else
        first.wait(timeout=30)
        assert saved < STEPS
        assert get(task_url)["status"] == "running"  # nobody knows yet: only the heartbeat tells

        second = spawn(["worker", "--database", service_db, *TIMING], env, log)
        running.append(second)
        while (task := get(task_url))["status"] not in ("succeeded", "failed", "canceled"):
            assert second.poll() is None and time.monotonic() < deadline, (tmp_path / "processes.log").read_text()
            time.sleep(0.5)
        assert task["status"] == "succeeded", task["error"]
        events = get(f"{task_url}/events", {"limit": 1000})["events"]
        before_restart = get(f"{url}/v1/fine-tuning/tasks")

        stop(serve)  # the API process goes; a new one on the same database
        url = f"http://127.0.0.1:{free_port()}"
        serve = spawn([*serve_args, "--port", url.rsplit(":", 1)[1]], env, log)
        running.append(serve)
        wait_health(url, 200, serve)  # the second worker is still alive
        after_restart = get(f"{url}/v1/fine-tuning/tasks")
        still_running = get(f"{url}/v1/fine-tuning/tasks", {"status": "running"})["total"]
    finally:
        for proc in running:
            if proc.poll() is None:
                stop(proc)
        log.close()

    statuses = [e["data"]["status"] for e in events if e["kind"] == "status"]
    assert statuses == ["pending", "running", "pending", "running", "succeeded"]
    handed_back = next(e for e in events if e["kind"] == "status" and e["data"].get("reason"))
    assert "heartbeats" in handed_back["data"]["reason"]
    # resumed from the killed worker's checkpoint (a later one cannot exist: that worker is gone)
    resumed = task["metrics"]["resumed_from_step"]
    assert resumed > 0 and resumed % SAVE_EVERY == 0 and resumed >= saved
    assert task["metrics"]["steps"] == STEPS and task["attempt"] == 1
    assert sorted(p.name for p in artefacts.iterdir()) == [str(task_id)]  # one artefact, no leftovers
    assert task["artifact_path"] == str(artefacts / str(task_id))
    assert after_restart == before_restart and after_restart["total"] == 1
    assert after_restart["tasks"][0]["status"] == "succeeded"
    assert still_running == 0
