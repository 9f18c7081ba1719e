"""`fintune serve` with no database (embedded PostgreSQL) and a `fintune worker` process on its URL.

The worker is a separate process that only knows the database URL: the set-up of a second machine."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from fintune import pgserver_local
from fintune.service.engine import embedded_folder

pytestmark = pytest.mark.slow
TOKEN = "process-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fintune(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fintune", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_health(url: str, want: int, proc: subprocess.Popen[str], timeout_s: float = 180) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        try:
            response = httpx.get(f"{url}/healthz", timeout=5)
            if response.status_code == want:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"/healthz never answered {want}")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_serve_with_embedded_database_and_a_worker_process(tmp_path, tiny_beir, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k not in ("FINTUNE_DATABASE_URL", "FINTUNE_API_TOKEN")}
    env |= {"FINTUNE_HOME": str(tmp_path / "home"), "FINTUNE_API_TOKEN": TOKEN}
    monkeypatch.setenv("FINTUNE_HOME", env["FINTUNE_HOME"])
    folder = embedded_folder()  # where `fintune serve` will put its database
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = fintune("serve", "--port", str(port), "--workers", "0", "--data-root", str(tiny_beir.parent), env=env)
    worker = None
    try:
        health = wait_health(url, 503, serve)  # API and database up, no worker yet
        assert health.json()["status"] == "no worker"
        db_url = pgserver_local.start(folder)  # already running: its URL
        worker = fintune("worker", "--database", db_url, env=env)
        assert wait_health(url, 200, worker).json()["workers"] == 1
        auth = {"Authorization": f"Bearer {TOKEN}"}
        tasks = f"{url}/v1/fine-tuning/tasks"
        assert httpx.get(tasks).status_code == 200  # a loopback bind: this machine's users need no token
        refused = httpx.post(tasks, json={"kind": "embedding", "data": "/etc"}, headers=auth)
        assert refused.status_code == 400 and "outside the data roots" in refused.json()["detail"]
        assert httpx.get(f"{url}/docs").status_code == 200
    finally:
        worker_out = stop(worker) if worker else ""
        serve_out = stop(serve)
    assert serve.returncode == 0, serve_out[-3000:]
    assert worker is not None and worker.returncode == 0, worker_out[-3000:]
    assert not pgserver_local.is_running(folder)  # serve stopped the server it started
    shutil.rmtree(folder, ignore_errors=True)
