"""Task semantics on a real PostgreSQL, without training: idempotency, deployment conflicts, cancel, restart."""

from __future__ import annotations

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from fintune.cli.main import main
from fintune.service.app import PREFIX

pytestmark = pytest.mark.slow  # starts PostgreSQL


@pytest.fixture
def root(tmp_path):
    (tmp_path / "data" / "beir").mkdir(parents=True)
    return tmp_path / "data"


def body(**extra):
    return {"kind": "embedding", "data": "beir", "config": {"epochs": 1, "max_steps": 10}, **extra}


def test_twenty_concurrent_identical_submits_make_one_task(make_client, root, service_db):
    with make_client([root]) as client:
        request = body(idempotency_key="k1")
        with ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(lambda _: client.post(PREFIX, json=request), range(20)))
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] * 19 + [201]
        assert len({r.json()["id"] for r in responses}) == 1
        task_id = responses[0].json()["id"]
        again = client.post(PREFIX, json=body(idempotency_key="k1", config={"epochs": 1, "max_steps": 10}))
        assert again.status_code == 200 and again.json()["id"] == task_id  # same request, other key order
        other = client.post(PREFIX, json=body(idempotency_key="k1", config={"epochs": 2}))
        assert other.status_code == 409
        assert f"task {task_id}" in other.json()["detail"] and other.json()["task"]["id"] == task_id
    with psycopg.connect(service_db) as conn:
        assert conn.execute("SELECT count(*) FROM fintune_tasks").fetchone() == (1,)
        jobs = conn.execute("SELECT count(*), min(queueing_lock) FROM procrastinate_jobs").fetchone()
        assert jobs == (1, f"task:{task_id}")


def test_deployment_conflict_waits_or_is_refused(make_client, root, service_db):
    with make_client([root]) as client:
        first = client.post(PREFIX, json=body(deploy={"name": "prod"})).json()
        refused = client.post(PREFIX, json=body(deploy={"name": "prod"}, wait_on_conflict=False))
        assert refused.status_code == 409
        assert refused.json()["task"]["status"] == "refused"
        assert f"task {first['id']} is already deploying to 'prod'" in refused.json()["detail"]
        queued = client.post(PREFIX, json=body(deploy={"name": "prod"}))
        assert queued.status_code == 201 and queued.json()["status"] == "pending"
        elsewhere = client.post(PREFIX, json=body(deploy={"name": "staging"}, wait_on_conflict=False))
        assert elsewhere.status_code == 201
        listed = client.get(PREFIX, params={"status": "refused"}).json()
        assert [t["id"] for t in listed["tasks"]] == [refused.json()["task"]["id"]] and listed["total"] == 1
    with psycopg.connect(service_db) as conn:
        locks = conn.execute("SELECT args->>'task_id', lock FROM procrastinate_jobs ORDER BY id").fetchall()
    # the engine runs jobs with one lock one at a time, in order: the queued task waits for the first
    assert locks == [(str(first["id"]), "deploy:prod"), (str(queued.json()["id"]), "deploy:prod"),
                     (str(elsewhere.json()["id"]), "deploy:staging")]  # fmt: skip


def test_cancel_and_restart_rules(make_client, root, service_db):
    with make_client([root]) as client:
        task = client.post(PREFIX, json=body()).json()
        assert client.post(f"{PREFIX}/{task['id']}/restart").status_code == 409  # pending: nothing to restart
        canceled = client.post(f"{PREFIX}/{task['id']}/cancel")
        assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
        again = client.post(f"{PREFIX}/{task['id']}/cancel")
        assert again.status_code == 409 and "is canceled" in again.json()["detail"]
        restarted = client.post(f"{PREFIX}/{task['id']}/restart")
        assert restarted.status_code == 200
        assert (restarted.json()["status"], restarted.json()["attempt"]) == ("pending", 2)
        events = client.get(f"{PREFIX}/{task['id']}/events").json()["events"]
        assert [e["data"]["status"] for e in events] == ["pending", "canceled", "pending"]
        assert client.get(f"{PREFIX}/999").status_code == 404
    with psycopg.connect(service_db) as conn:
        statuses = conn.execute("SELECT status FROM procrastinate_jobs ORDER BY id").fetchall()
    assert statuses == [("cancelled",), ("todo",)]


def test_tasks_command_line_client(make_client, root, monkeypatch, capsys):
    from fintune.cli import service as cli

    with make_client([root]) as client:
        monkeypatch.setattr(cli, "make_client", lambda server, token: contextlib.nullcontext(client))
        args = ["--data", "beir", "--set", "epochs=1", "--set", "max_steps=3", "--idempotency-key", "cli-1"]
        assert main(["tasks", "submit", *args]) == 0
        task = json.loads(capsys.readouterr().out)
        assert (task["status"], task["config"]["epochs"], task["request"]["config"]) == (
            "pending", 1.0, {"epochs": 1, "max_steps": 3})  # fmt: skip
        assert main(["tasks", "list", "--status", "pending"]) == 0
        assert [t["id"] for t in json.loads(capsys.readouterr().out)["tasks"]] == [task["id"]]
        assert main(["tasks", "cancel", str(task["id"])]) == 0
        assert json.loads(capsys.readouterr().out)["status"] == "canceled"
        assert main(["tasks", "cancel", str(task["id"])]) == 2
        assert f"409 task {task['id']} is canceled: nothing to cancel" in capsys.readouterr().err
        assert main(["tasks", "watch", str(task["id"])]) == 1  # finished, not succeeded
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [e["data"]["status"] for e in lines] == ["pending", "canceled"]
        assert main(["tasks", "submit", "--data", "beir", "--set", "epochs=0"]) == 2
        assert "422 body.config.epochs: Input should be greater than 0" in capsys.readouterr().err


def test_task_of_a_vanished_worker_is_handed_back(make_client, root, service_db):
    from fintune.service.recovery import recover_stalled

    with make_client([root]) as client:
        task_id = client.post(PREFIX, json=body()).json()["id"]
        with psycopg.connect(service_db, autocommit=True) as conn:  # a worker took it, then died a minute ago
            (worker,) = conn.execute(
                "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '60 seconds') RETURNING id"
            ).fetchone()
            conn.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s", (worker,))
            conn.execute("UPDATE fintune_tasks SET status = 'running'")
        service = client.app.state.service
        assert client.portal.call(recover_stalled, service.engine, service.pool, 90.0) == []  # not stalled yet
        assert client.portal.call(recover_stalled, service.engine, service.pool, 30.0) == [task_id]
        assert client.portal.call(recover_stalled, service.engine, service.pool, 30.0) == []  # retried once only
        task = client.get(f"{PREFIX}/{task_id}").json()
        assert task["status"] == "pending"
        last = client.get(f"{PREFIX}/{task_id}/events").json()["events"][-1]["data"]
        assert "stopped sending heartbeats" in last["reason"]
    with psycopg.connect(service_db) as conn:
        assert conn.execute("SELECT status, attempts FROM procrastinate_jobs").fetchone() == ("todo", 1)


def test_an_api_restart_loses_nothing(make_client, root, service_db):
    with make_client([root]) as client:
        first = client.post(PREFIX, json=body(idempotency_key="before-restart")).json()
    with make_client([root]) as client:  # a new API process on the same database
        assert client.get(f"{PREFIX}/{first['id']}").json() == first
        again = client.post(PREFIX, json=body(idempotency_key="before-restart"))
        assert again.status_code == 200 and again.json()["id"] == first["id"]
    with psycopg.connect(service_db) as conn:
        assert conn.execute("SELECT status FROM procrastinate_jobs").fetchall() == [("todo",)]
