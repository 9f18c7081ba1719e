"""What a task with `deploy: {name, as_blue: true}` does after training: gate, export, switch.

Gate: the tuned model must score at least the live version's validation score minus the request's
tolerance, both measured on the run's own validation data; otherwise nothing is deployed and the task
ends `refused` with both figures. Embeddings: NDCG@10 on the run's held-out groups (else its eval split);
then the model is exported to int8 ONNX (what serving loads fastest). LLM adapters: the task's metric
(`llm eval`'s generation scoring: weighted F1, token F1, numeric accuracy or BERTScore F1) on the task's
validation examples. The deployment then switches to the result as version `task-<id>` (its bound
collections re-embedded first); a deployment that does not exist yet is created with it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError
from fintune.models.resolve import model_key

log = logging.getLogger(__name__)

GATE_METRIC = "ndcg@10"
LLM_GATE_METRIC = {"classification": "f1_weighted", "qa": "token_f1", "numeric": "accuracy",
                   "generation": "bertscore_f1"}  # fmt: skip
LLM_GATE_EXAMPLES = 64  # validation examples both adapters answer (the run's eval_limit when smaller)


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

    if call.kind not in ("embedding", "llm"):
        raise DeployRefused(f"deploy: '{call.kind}' tasks have no deployment gate", {"deployed": False})
    rt = Runtime(call.database_url, roots=[])
    rt.setup()
    try:
        with rt.connect() as conn:
            live = dbd.get(conn, call.name)
        if live is not None and live.kind != call.kind:
            raise DeployRefused(f"deploy: '{call.name}' serves {live.kind}, not {call.kind}", {"deployed": False})
        version = f"task-{call.task_id}"
        if call.kind == "llm":
            record: dict[str, Any] = {"deployment": call.name, "tolerance": call.tolerance}
            if live is not None:
                record.update(_llm_gate(call, live.live))
            model, adapter = "", str(call.output)
        else:
            record = {"deployment": call.name, "metric": GATE_METRIC, "tolerance": call.tolerance}
            if live is not None:
                record.update(_gate(rt, call, live.live.model))
            model, adapter = str(_export(call)), None
        if live is None:
            switching.create(rt, call.name, call.kind, model, version, adapter)  # type: ignore[arg-type]
            record.update(deployed=True, version=version, created=True)
        else:
            result = switching.switch(rt, call.name, version, model=model or None, adapter=adapter,
                                      metrics=record.copy())  # fmt: skip
            record.update(deployed=True, version=version, previous=result.previous, switch_seconds=result.seconds)
        return record
    finally:
        rt.close()


def _llm_gate(call: DeployCall, live: Any) -> dict[str, Any]:
    """Both adapters (or the live base) answer the task's validation examples; the task's metric decides."""
    from fintune.data.tasks import get_task
    from fintune.llm.data import evaluation_examples, llm_family, sample_examples
    from fintune.llm.evaluate import evaluate_examples
    from fintune.llm.inference import load_for_inference

    config = call.config
    if not config.task or config.tasks:
        raise DeployRefused("deploy: an LLM run gates on its one task's validation data; this run has none", {})
    family = llm_family(get_task(config.task))
    metric = LLM_GATE_METRIC.get(family)
    if metric is None:
        raise DeployRefused(f"deploy: no gate metric for '{family}' tasks", {"deployed": False})
    limit = min(config.eval_limit or LLM_GATE_EXAMPLES, LLM_GATE_EXAMPLES)
    chosen = evaluation_examples(config.task, config.eval_path, config.seed, limit)
    examples = sample_examples(chosen.examples, limit, config.seed)

    def score(model: str | None, adapter: str | None) -> float:
        lm, tokenizer, settings = load_for_inference(model, adapter)
        result = evaluate_examples(lm, tokenizer, examples, family, system_prompt=settings.system_prompt,
                                   max_length=settings.max_length, progress=False)  # fmt: skip
        return float(result.metrics[metric])

    tuned = score(None, str(call.output))
    live_score = score(live.model or None, live.adapter)
    return _decide(metric, tuned, live_score, call.tolerance,
                   {"examples": len(examples), "live_model": live.adapter or live.model})  # fmt: skip


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
    return _decide(GATE_METRIC, float(tuned), float(live_score), call.tolerance, {"live_model": live_model})


def _decide(metric: str, tuned: float, live: float, tolerance: float, extra: dict[str, Any]) -> dict[str, Any]:
    """The gate's figures; DeployRefused (carrying them) when the tuned model falls short."""
    figures = {"metric": metric, "tuned_score": round(tuned, 6), "live_score": round(live, 6), **extra}
    log.info("deploy gate: tuned %s %.4f, live %.4f (tolerance %.4f)", metric, tuned, live, tolerance)
    if tuned < live - tolerance:
        raise DeployRefused(
            f"deployment refused: tuned {metric} {tuned:.4f} is below the live version's {live:.4f} "
            f"by more than the tolerance {tolerance:g}",
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
