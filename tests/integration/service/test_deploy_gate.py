"""A task with `deploy: {name, as_blue: true}`: the first creates the deployment (int8 ONNX export); a
deliberately worse model is refused by the gate with both figures, and the live version keeps serving;
a tolerant gate lets the next one through as a switch."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from fintune.service.app import PREFIX
from tests.integration.service.conftest import wait_for
from tests.integration.service.test_training import QUICK, WAIT_S

pytestmark = pytest.mark.slow


def submit(client, tiny_beir: Path, config: dict, deploy: dict) -> dict:
    body = {"kind": "embedding", "base_model": "minilm", "data": tiny_beir.name, "config": {**QUICK, **config},
            "deploy": {"name": "tenk", "as_blue": True, **deploy}}  # fmt: skip
    created = client.post(PREFIX, json=body)
    assert created.status_code == 201, created.text
    return wait_for(client, created.json()["id"], {"succeeded", "failed", "refused"}, WAIT_S)


def served_version(client) -> str:
    response = client.post("/v1/embeddings", json={"model": "tenk", "input": "What was the revenue?"})
    assert response.status_code == 200, response.text
    return response.headers["X-Fintune-Model-Version"]


def test_gate_refuses_a_worse_model_and_the_live_version_keeps_serving(make_client, tiny_beir, tmp_path):
    with make_client([tiny_beir.parent], workers=1) as client:
        first = submit(client, tiny_beir, {"max_steps": 2}, {})
        assert first["status"] == "succeeded", first["error"]
        record = first["metrics"]["deploy"]
        assert record["deployed"] and record["created"] and record["version"] == f"task-{first['id']}"
        live = client.get("/v1/deployments/tenk").json()["live"]
        assert Path(live["model"]).name == f"{first['id']}-onnx-int8"  # served from the int8 export
        assert served_version(client) == f"task-{first['id']}"

        # a learning rate 4000x the default wrecks the model in a few steps
        worse = submit(client, tiny_beir, {"max_steps": 4, "learning_rate": 0.2}, {"tolerance": 0.01})
        assert worse["status"] == "refused", worse["error"]
        gate = worse["metrics"]["deploy"]
        assert gate["deployed"] is False and gate["tuned_score"] < gate["live_score"] - 0.01
        assert gate["tuned_score"] == pytest.approx(worse["metrics_after"]["ndcg@10"], abs=1e-6)
        assert "refused" in worse["error"] and f"{gate['live_score']:.4f}" in worse["error"]
        assert served_version(client) == f"task-{first['id']}"  # the live version never stopped serving

        tolerant = submit(client, tiny_beir, {"max_steps": 1}, {"tolerance": 1.0})
        assert tolerant["status"] == "succeeded", tolerant["error"]
        assert tolerant["metrics"]["deploy"]["previous"] == f"task-{first['id']}"
        deployment = client.get("/v1/deployments/tenk").json()
        assert (deployment["live"]["version"], deployment["previous"]["version"]) == (
            f"task-{tolerant['id']}",
            f"task-{first['id']}",
        )
        deadline = time.monotonic() + 2.0  # the worker switched it: the API process follows within a poll
        while served_version(client) != f"task-{tolerant['id']}":
            assert time.monotonic() < deadline, "the API still serves the previous version"
            time.sleep(0.05)

        # a worker that died after writing its model but before recording it: the next attempt finds the
        # model and still deploys it (here: the next task's folder is already there, nothing trains)
        artefacts = tmp_path / "home" / "service" / "artifacts"
        recovered_id = tolerant["id"] + 1
        shutil.copytree(artefacts / str(tolerant["id"]), artefacts / str(recovered_id))
        recovered = submit(client, tiny_beir, {"max_steps": 3}, {"tolerance": 1.0})
        assert recovered["id"] == recovered_id and recovered["status"] == "succeeded", recovered["error"]
        assert recovered["progress"] is None  # no training step ran
        assert recovered["metrics"]["deploy"]["version"] == f"task-{recovered_id}"
        assert recovered["metrics_after"] == tolerant["metrics_after"]  # the recorded model's own figures


def test_llm_gate_scores_both_adapters_on_the_task_with_llm_evals_metric(tmp_path) -> None:
    """The LLM gate's two figures are `llm eval`'s weighted F1 of each model on the task's validation
    examples (a tiny random model on the real fpb dev split: mechanics, not quality)."""
    from fintune.config.schema import LLMRunConfig
    from fintune.llm.data import evaluation_examples, sample_examples
    from fintune.llm.evaluate import evaluate_examples
    from fintune.llm.inference import load_for_inference
    from fintune.service.deploy import DeployCall, DeployRefused, _llm_gate
    from fintune.serving.deployments import Version
    from tests.helpers import random_lora_adapter
    from tests.unit.llm.conftest import make_tiny_llm

    base = make_tiny_llm(tmp_path / "tiny")
    adapter = tmp_path / "adapter"
    random_lora_adapter(base, adapter, target_modules=["q_proj", "v_proj"], lora_alpha=256)
    config = LLMRunConfig(task="fpb", base_model=str(base), eval_limit=8)
    call = DeployCall("unused", 7, "fpb-llm", 0.0, "llm", config, adapter, None, None)
    live = Version("fpb-llm", "v1", str(base), None, None, {}, "ready")

    def f1(model: str | None, adapter_dir: str | None) -> float:
        examples = sample_examples(evaluation_examples("fpb", None, config.seed, 8).examples, 8, config.seed)
        lm, tokenizer, settings = load_for_inference(model, adapter_dir)
        scored = evaluate_examples(lm, tokenizer, examples, "classification", system_prompt=settings.system_prompt,
                                   max_length=settings.max_length, progress=False)  # fmt: skip
        return round(float(scored.metrics["f1_weighted"]), 6)

    tuned, live_score = f1(None, str(adapter)), f1(str(base), None)
    try:
        figures = _llm_gate(call, live)
    except DeployRefused as refused:  # the random adapter scored below the base: refused with both figures
        assert tuned < live_score
        figures = refused.record
    assert (figures["metric"], figures["examples"]) == ("f1_weighted", 8)
    assert (figures["tuned_score"], figures["live_score"]) == (tuned, live_score)
