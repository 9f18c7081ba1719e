"""Evaluation by generation: prompt each record as in training, generate, score by the task's family."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fintune.data.tasks import FinancialTask
from fintune.llm.generate import generate_batched
from fintune.llm.prompts import build_example, render_prompt
from fintune.metrics.classification import classification_metrics, first_label

MAX_NEW_TOKENS = {"classification": 8, "numeric": 16, "qa": 64, "generation": 96}


@dataclass
class GenerationEval:
    metrics: dict[str, float]
    predictions: list[dict[str, Any]]


def evaluate_generation(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: FinancialTask,
    records: list[dict[str, Any]],
    batch_size: int = 16,
    system_prompt: str | None = None,
) -> GenerationEval:
    if task.family != "classification":
        raise ValueError(f"task '{task.name}' ({task.family}) is not scored by generation yet; classification is")
    examples = [build_example(task, r) for r in records]
    prompts = [render_prompt(tokenizer, e.prompt, system_prompt) for e in examples]
    start = time.perf_counter()
    answers = generate_batched(model, tokenizer, prompts, MAX_NEW_TOKENS[task.family], batch_size)
    elapsed = time.perf_counter() - start
    golds = [e.target for e in examples]
    labels = task.labels or tuple(sorted(set(golds)))
    metrics = classification_metrics(answers, golds, labels)
    metrics.update(examples=len(records), examples_per_s=len(records) / elapsed)
    predictions = [
        {"id": r.get("id", i), "prompt": e.prompt, "answer": a, "predicted": first_label(a, labels), "gold": e.target}
        for i, (r, e, a) in enumerate(zip(records, examples, answers, strict=True))
    ]
    return GenerationEval(metrics=metrics, predictions=predictions)
