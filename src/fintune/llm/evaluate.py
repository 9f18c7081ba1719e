"""Evaluation by generation: prompt each record as in training, generate, score by the task's family."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fintune.data.tasks import FinancialTask
from fintune.llm.generate import generate_batched
from fintune.llm.prompts import Example, build_examples, render_prompt
from fintune.metrics.classification import classification_metrics, first_label
from fintune.metrics.numeric import numeric_metrics
from fintune.metrics.qa import qa_metrics

MAX_NEW_TOKENS = {"classification": 8, "numeric": 16, "qa": 64, "generation": 96}


def _classification(answers: list[str], golds: list[str], examples: list[Example]) -> dict[str, float]:
    labels = tuple(dict.fromkeys(label for e in examples for label in e.labels)) or tuple(sorted(set(golds)))
    return classification_metrics(answers, golds, labels)


SCORERS = {
    "classification": _classification,
    "qa": lambda answers, golds, examples: qa_metrics(answers, golds),
    "numeric": lambda answers, golds, examples: numeric_metrics(answers, golds),
}


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
    if task.family not in SCORERS:
        raise ValueError(
            f"task '{task.name}' ({task.family}) is not scored by generation yet; families scored: {', '.join(SCORERS)}"
        )
    pairs = [(r, e) for r in records for e in build_examples(task, r)]
    examples = [e for _, e in pairs]
    prompts = [render_prompt(tokenizer, e.prompt, system_prompt) for e in examples]
    start = time.perf_counter()
    answers = generate_batched(model, tokenizer, prompts, MAX_NEW_TOKENS[task.family], batch_size)
    elapsed = time.perf_counter() - start
    golds = [e.target for e in examples]
    metrics = SCORERS[task.family](answers, golds, examples)
    metrics.update(records=len(records), examples=len(examples), examples_per_s=len(examples) / elapsed)
    predictions = [
        {"id": r.get("id", i), "prompt": e.prompt, "answer": a, "gold": e.target}
        | ({"predicted": first_label(a, e.labels)} if e.labels else {})
        for i, ((r, e), a) in enumerate(zip(pairs, answers, strict=True))
    ]
    return GenerationEval(metrics=metrics, predictions=predictions)
