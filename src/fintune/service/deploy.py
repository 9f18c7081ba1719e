"""What a task with `deploy: {name, as_blue: true}` does after training: gate, export, switch.

Gate: the tuned model must score at least the live version's validation NDCG@10 minus the request's
tolerance, both measured on the run's own validation data (its held-out groups, else its eval split);
otherwise nothing is deployed and the task ends `refused` with both figures. Then the model is exported
to int8 ONNX (what serving loads fastest) and the deployment switches to it as version `task-<id>`, its
bound collections re-embedded first. A deployment that does not exist yet is created with the model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError
from fintune.models.resolve import model_key

log = logging.getLogger(__name__)

GATE_METRIC = "ndcg@10"


class DeployRefused(FintuneError, RuntimeError):
    """The tuned model failed the gate (or cannot be gated): the task ends `refused`."""

    def __init__(self, message: str, record: dict[str, Any]):
        super().__init__(message)
        self.record = record


@dataclass(frozen=True)
class DeployCall:
    database_url: str
    task_id: int
    name: str
    tolerance: float
    kind: str
    config: Any  # the task's run config
    output: Path  # the trained model
    metrics_after: dict[str, Any] | None
    metrics_before: dict[str, Any] | None


def deploy(call: DeployCall) -> dict[str, Any]:
    """Gate, export, switch; the record kept in the task's metrics under `deploy`."""
    from fintune.serving import deployments as dbd
    from fintune.serving import switch as switching
    from fintune.serving.runtime import Runtime

    if call.kind != "embedding":
        raise DeployRefused(
            f"deploy: '{call.kind}' tasks have no deployment gate yet; deploy the adapter with "
            "POST /v1/deployments/{name}/switch",
            {"deployed": False},
        )
    rt = Runtime(call.database_url, roots=[])
    rt.setup()
    try:
        with rt.connect() as conn:
            live = dbd.get(conn, call.name)
        record: dict[str, Any] = {"deployment": call.name, "metric": GATE_METRIC, "tolerance": call.tolerance}
        if live is not None:
            record.update(_gate(rt, call, live.live.model))
        export = _export(call)
        version = f"task-{call.task_id}"
        if live is None:
            switching.create(rt, call.name, "embedding", str(export), version)
            record.update(deployed=True, version=version, created=True)
        else:
            result = switching.switch(rt, call.name, version, model=str(export), metrics=record.copy())
            record.update(deployed=True, version=version, previous=result.previous, switch_seconds=result.seconds)
        return record
    finally:
        rt.close()


def _gate(rt: Any, call: DeployCall, live_model: str) -> dict[str, Any]:
    from fintune.embed.evaluate import evaluate_retrieval
    from fintune.embed.train import validation_data

    tuned = (call.metrics_after or {}).get(GATE_METRIC)
    if tuned is None:
        raise DeployRefused("deploy: the run has no validation score to gate on", {"deployed": False})
    if model_key(live_model) == model_key(call.config.model) and call.metrics_before:
        live_score = call.metrics_before[GATE_METRIC]  # the live model is the run's base: scored already
    else:
        data = validation_data(call.config)
        if data is None:
            raise DeployRefused("deploy: the run has no validation data to score the live model on", {})
        live_score = evaluate_retrieval(rt.embedders.get(live_model).model, data).metrics[GATE_METRIC]
    figures = {"tuned_score": round(float(tuned), 6), "live_score": round(float(live_score), 6),
               "live_model": live_model}  # fmt: skip
    log.info("deploy gate: tuned %s %.4f, live %.4f (tolerance %.4f)", GATE_METRIC, tuned, live_score, call.tolerance)
    if tuned < live_score - call.tolerance:
        raise DeployRefused(
            f"deployment refused: tuned {GATE_METRIC} {tuned:.4f} is below the live version's {live_score:.4f} "
            f"by more than the tolerance {call.tolerance:g}",
            {**figures, "deployed": False},
        )
    return figures


def _export(call: DeployCall) -> Path:
    from fintune.embed.export import export_onnx

    target = call.output.with_name(f"{call.output.name}-onnx-int8")
    if target.is_dir():  # an earlier attempt exported it before its worker stopped
        return target
    result = export_onnx(str(call.output), target, quantize="int8")
    log.info("exported %s (int8, min cosine to PyTorch %.4f)", target, result.min_cosine)
    return target
