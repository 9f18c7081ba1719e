"""Fine-tuning methods (Embedding Studio's `FineTuningMethod`): a task's `kind` names one.

Methods are found through the entry-point group `fintune.methods`; each entry point loads a
`FineTuningMethod` (or a callable returning one). The built-in `embedding` and `llm` are registered
there by fintune's own pyproject and are also added here directly, so they work from a source tree
that was never pip-installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from fintune.config.schema import EmbedRunConfig, LLMRunConfig

log = logging.getLogger(__name__)

GROUP = "fintune.methods"


@dataclass(frozen=True)
class TrainCall:
    """What a worker hands a method's trainer."""

    config: Any  # an instance of the method's config_class
    output: Path  # chosen by the server; the trainer writes it atomically
    callbacks: list[Any]  # transformers TrainerCallbacks: progress, cancel
    resume: bool = True  # continue from the last checkpoint beside `output`
    options: dict[str, Any] = field(default_factory=dict)  # the method's service_options from the request


@dataclass(frozen=True)
class MethodResult:
    metrics_before: dict[str, Any] | None = None
    metrics_after: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None


@dataclass(frozen=True)
class FineTuningMethod:
    """A kind of task: its config class, where the request's fields go in it, and its trainer call."""

    kind: str
    config_class: type[BaseModel]
    train: Callable[[TrainCall], MethodResult]
    data_field: str = "data"  # the config field `data` of a request fills
    model_field: str = "model"  # the config field `base_model` of a request fills
    path_fields: tuple[str, ...] = ("data",)  # config fields naming client paths: confined to the data roots
    pipeline: str | None = None  # a fintune pipeline ('embed', 'llm'): run files and aliases work as in the CLI
    service_options: tuple[str, ...] = ()  # keys of `config` the service takes off before validation
    description: str = ""


def _train_embedding(call: TrainCall) -> MethodResult:
    from fintune.embed.train import train_embedder
    from fintune.service.callbacks import SaveEvery, StepLimit

    callbacks = list(call.callbacks)
    if call.options.get("max_steps"):
        callbacks.append(StepLimit(int(call.options["max_steps"])))
    if call.options.get("save_steps"):
        callbacks.append(SaveEvery(int(call.options["save_steps"])))
    result = train_embedder(call.config, call.output, callbacks=callbacks, resume=call.resume)
    metrics = {
        "steps": result.steps,
        "train_seconds": result.train_seconds,
        "pairs_per_s": result.pairs_per_s,
        "validation": result.validation,
        "eval_metrics": result.eval_metrics,
        "resumed_from_step": result.resumed_from_step,
        "notes": result.notes,
    }
    return MethodResult(result.before, result.after, metrics)


def _train_llm(call: TrainCall) -> MethodResult:
    from fintune.llm.train import train_llm

    result = train_llm(call.config, call.output, callbacks=call.callbacks, resume=call.resume)
    evals = [h for h in result.history if "eval_loss" in h]
    # the last logged loss; a run shorter than logging_steps only has the Trainer's closing average
    losses = [h["loss"] for h in result.history if "loss" in h] or [
        h["train_loss"] for h in result.history if "train_loss" in h
    ]
    metrics = {
        "steps": result.steps,
        "train_seconds": result.train_seconds,
        "tokens_per_s": result.tokens_per_s,
        "train_loss": losses[-1] if losses else None,
        "notes": result.notes,
    }
    after = {"eval_loss": evals[-1]["eval_loss"]} if evals else None
    return MethodResult(None, after, metrics)


EMBEDDING = FineTuningMethod(
    kind="embedding",
    config_class=EmbedRunConfig,
    train=_train_embedding,
    data_field="data",
    model_field="model",
    path_fields=("data", "domain_data"),
    pipeline="embed",
    # EmbedRunConfig has no step cap (it trains whole epochs) and checkpoints every 200 steps; a service
    # task often wants a short run, and a lost worker should cost few steps
    service_options=("max_steps", "save_steps"),
    description="sentence-transformers embedding fine-tuning (fintune embed train)",
)
LLM = FineTuningMethod(
    kind="llm",
    config_class=LLMRunConfig,
    train=_train_llm,
    data_field="dataset_path",
    model_field="base_model",
    path_fields=("dataset_path", "eval_path"),
    pipeline="llm",
    description="LoRA-family LLM fine-tuning (fintune llm train)",
)
BUILT_IN = {m.kind: m for m in (EMBEDDING, LLM)}


def _load(entry: Any) -> FineTuningMethod | None:
    try:
        loaded = entry.load()
        method = loaded if isinstance(loaded, FineTuningMethod) else loaded()
    except Exception as exc:  # a broken plugin must not take the service down: log it, skip it
        log.warning("fine-tuning method %r (%s) cannot load: %s", entry.name, entry.value, exc)
        return None
    if not isinstance(method, FineTuningMethod):
        log.warning("entry point %r (%s) is not a FineTuningMethod; skipped", entry.name, entry.value)
        return None
    return method


@cache
def methods() -> dict[str, FineTuningMethod]:
    """Every method by kind: the built-ins, then the entry points (a plugin cannot replace a built-in)."""
    found = dict(BUILT_IN)
    for entry in entry_points(group=GROUP):
        method = _load(entry)
        if method is None or method is BUILT_IN.get(method.kind):
            continue
        if method.kind in found:
            log.warning("fine-tuning method %r from %s ignored: the kind is taken", method.kind, entry.value)
            continue
        found[method.kind] = method
    return found


def builtin_embedding() -> FineTuningMethod:
    """Entry-point target of the built-in `embedding` kind."""
    return EMBEDDING


def builtin_llm() -> FineTuningMethod:
    """Entry-point target of the built-in `llm` kind."""
    return LLM
