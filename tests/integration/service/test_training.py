"""Real fine-tuning through the API: MiniLM on a slice of the 10-K QA data, to `succeeded` and to `canceled`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fintune.config.saved import read_embed_run
from fintune.service.app import PREFIX
from tests.integration.service.conftest import wait_for, wait_healthy

pytestmark = pytest.mark.slow

# Small and quick: the slice's 40 dev queries for before/after, no mined negatives, no XBRL check.
QUICK = {"epochs": 1, "batch_size": 4, "max_seq_length": 128, "validation_group_by": "none", "style_check": False,
         "hard_negatives": 0}  # fmt: skip
WAIT_S = 600  # on a quiet 2-core machine the run takes ~20 s; a shared one is many times slower


def test_embedding_task_runs_to_succeeded_with_metrics_and_events(make_client, tiny_beir):
    with make_client([tiny_beir.parent], workers=1) as client:
        assert wait_healthy(client)["workers"] == 1
        body = {"kind": "embedding", "base_model": "minilm", "data": tiny_beir.name,
                "config": {**QUICK, "max_steps": 2}, "idempotency_key": "train-1"}  # fmt: skip
        created = client.post(PREFIX, json=body)
        assert created.status_code == 201, created.text
        task = wait_for(client, created.json()["id"], {"succeeded", "failed"}, WAIT_S)
        assert task["status"] == "succeeded", task["error"]
        events = client.get(f"{PREFIX}/{task['id']}/events").json()["events"]
    artefact = Path(task["artifact_path"])
    assert artefact.name == str(task["id"]) and artefact.parent.name == "artifacts"
    recorded = json.loads((artefact / "fintune_metrics.json").read_text())
    assert recorded["steps"] == 2 == task["metrics"]["steps"]
    run = read_embed_run(artefact)  # loadable as any `fintune embed train` output
    assert run is not None and run.output == str(artefact) and run.data == str(tiny_beir.resolve())
    assert 0 <= task["metrics_before"]["ndcg@10"] <= 1 and 0 <= task["metrics_after"]["ndcg@10"] <= 1
    assert task["progress"]["step"] == 2 and task["progress"]["total"] == 2
    statuses = [e["data"]["status"] for e in events if e["kind"] == "status"]
    assert statuses == ["pending", "running", "succeeded"]
    assert any(e["kind"] == "log" for e in events)
    assert not list(artefact.parent.glob(".*"))  # no temporary or checkpoint folder left beside it


def test_cancel_mid_training_then_restart_resumes_from_the_checkpoint(make_client, tiny_beir, tmp_path):
    artefacts = tmp_path / "home" / "service" / "artifacts"
    with make_client([tiny_beir.parent], workers=1) as client:
        body = {"kind": "embedding", "data": tiny_beir.name, "config": {**QUICK, "eval_split": "none", "max_steps": 12}}
        task_id = client.post(PREFIX, json=body).json()["id"]
        while not ((task := client.get(f"{PREFIX}/{task_id}").json())["progress"] or {}).get("step"):
            assert task["status"] in ("pending", "running"), task["error"]
            time.sleep(0.2)  # until a step is done: the trainer is inside its loop
        response = client.post(f"{PREFIX}/{task_id}/cancel")
        assert response.status_code == 202 and response.json()["cancel_requested"]
        task = wait_for(client, task_id, {"canceled", "failed", "succeeded"}, WAIT_S)
        assert task["status"] == "canceled", task["error"]
        assert client.post(f"{PREFIX}/{task_id}/cancel").status_code == 409
        assert not (artefacts / str(task_id)).exists()  # nothing half-written: only the checkpoint beside it
        (checkpoint,) = (artefacts / f".{task_id}.work").glob("checkpoint-*")
        stopped_at = int(checkpoint.name.split("-")[1])
        assert 1 <= stopped_at < 12

        restarted = client.post(f"{PREFIX}/{task_id}/restart")
        assert restarted.status_code == 200 and restarted.json()["attempt"] == 2
        task = wait_for(client, task_id, {"succeeded", "failed", "canceled"}, WAIT_S)
    assert task["status"] == "succeeded", task["error"]
    assert task["metrics"]["resumed_from_step"] == stopped_at and task["metrics"]["steps"] == 12
    assert (artefacts / str(task_id) / "fintune_metrics.json").is_file()
    assert not (artefacts / f".{task_id}.work").exists()


def test_llm_task_runs_to_succeeded_and_its_adapter_is_scored_by_llm_eval(
    make_client, shared_data, tmp_path, monkeypatch
):
    """SmolLM2 + LoRA for 2 steps on 16 real FPB sentences, through the API, then `fintune llm eval` on it."""
    from fintune.config.saved import read_llm_run
    from fintune.models.resolve import resolve_model
    from fintune.paths import fintune_home
    from tests.helpers import run_cli

    with monkeypatch.context() as m:  # the converted SmolLM2 of the usual cache, not a second conversion
        m.delenv("FINTUNE_HOME")
        converted = resolve_model("smollm2")
    (fintune_home() / "models").mkdir(parents=True, exist_ok=True)
    (fintune_home() / "models" / converted.name).symlink_to(converted)
    root = tmp_path / "data"
    rows = (shared_data / "sentiment" / "fpb" / "train.jsonl").read_text().splitlines()[:16]
    (root / "fpb").mkdir(parents=True)
    (root / "fpb" / "train.jsonl").write_text("\n".join(rows) + "\n")
    dev = root / "fpb" / "dev.jsonl"
    dev.write_text("\n".join((shared_data / "sentiment" / "fpb" / "dev.jsonl").read_text().splitlines()[:4]) + "\n")
    config = {"task": "fpb", "max_steps": 2, "batch_size": 4, "eval_each_epoch": False, "max_seq_length": 128}
    with make_client([root], workers=1) as client:
        body = {"kind": "llm", "base_model": "smollm2", "data": "fpb/train.jsonl", "config": config}
        created = client.post(PREFIX, json=body)
        assert created.status_code == 201, created.text
        task = wait_for(client, created.json()["id"], {"succeeded", "failed"}, WAIT_S)
    assert task["status"] == "succeeded", task["error"]
    assert task["metrics"]["steps"] == 2
    adapter = Path(task["artifact_path"])
    run = read_llm_run(adapter)
    assert run is not None and run.dataset_path == str((root / "fpb" / "train.jsonl").resolve())
    assert (adapter / "adapter_config.json").is_file()
    run_cli("llm", "eval", "--adapter", adapter, "--task", "fpb", "--data", dev, "--output", tmp_path / "m.json")
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["examples"] == 4 and 0 <= metrics["accuracy"] <= 1
