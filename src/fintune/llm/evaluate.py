"""Evaluation by generation: prompt each example as in training, generate, score by the task's family."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fintune.config.schema import LLM_MAX_SEQ_LENGTH
from fintune.data.tasks import FinancialTask
from fintune.errors import UsageError
from fintune.llm.data import llm_family
from fintune.llm.encode import encode_prompt
from fintune.llm.generate import generate_batched
from fintune.llm.prompts import Example, build_examples
from fintune.metrics.classification import classification_metrics, first_label
from fintune.metrics.numeric import first_number, numeric_metrics
from fintune.metrics.qa import qa_metrics
from fintune.metrics.regression import regression_metrics
from fintune.metrics.summarization import summarization_metrics

MAX_NEW_TOKENS = {"classification": 8, "numeric": 16, "regression": 16, "qa": 64, "generation": 128}
LATENCY_PROMPTS = 5  # single-prompt generations timed for latency_ms_p50


def _classification(answers: list[str], golds: list[str], examples: list[Example]) -> dict[str, float]:
    labels = tuple(dict.fromkeys(label for e in examples for label in e.labels)) or tuple(sorted(set(golds)))
    return classification_metrics(answers, golds, labels)


def _regression(answers: list[str], golds: list[str], examples: list[Example]) -> dict[str, float]:
    """MSE, R², Pearson and directional accuracy over the answers that hold a number; the rest are counted
    (`unparsed`, `unparsed_rate`), not guessed."""
    pairs = [(first_number(a), float(g)) for a, g in zip(answers, golds, strict=True)]
    scored = [(p, g) for p, g in pairs if p is not None]
    metrics = regression_metrics([p for p, _ in scored], [g for _, g in scored]) if len(scored) >= 2 else {}
    unparsed = len(pairs) - len(scored)
    return metrics | {"unparsed": float(unparsed), "unparsed_rate": unparsed / len(pairs)}


Scorer = Callable[[list[str], list[str], list[Example]], dict[str, float]]
SCORERS: dict[str, Scorer] = {
    "classification": _classification,
    "qa": lambda answers, golds, examples: qa_metrics(answers, golds),
    "numeric": lambda answers, golds, examples: numeric_metrics(answers, golds),
    "regression": _regression,
    "generation": lambda answers, golds, examples: summarization_metrics(answers, golds),
}


@dataclass
class GenerationEval:
    metrics: dict[str, float]
    predictions: list[dict[str, Any]]
    by_source: dict[str, dict[str, float]] = field(default_factory=dict)  # a multi-source task's parts


def score_by_source(family: str, answers: list[str], examples: list[Example]) -> dict[str, dict[str, float]]:
    """The family's metrics on each source of a multi-source task (sentiment: fpb, tfns, fiqa_sa_score)."""
    sources = dict.fromkeys(e.source for e in examples if e.source)
    out = {}
    for source in sources:
        chosen = [i for i, e in enumerate(examples) if e.source == source]
        picked = [examples[i] for i in chosen]
        metrics = SCORERS[family]([answers[i] for i in chosen], [e.target for e in picked], picked)
        out[source] = {"examples": float(len(chosen)), **metrics}
    return out


def evaluate_examples(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    family: str,
    batch_size: int = 16,
    system_prompt: str | None = None,
    max_length: int = LLM_MAX_SEQ_LENGTH,
    ids: list[Any] | None = None,
    progress: bool = True,
) -> GenerationEval:
    if family not in SCORERS:
        raise UsageError(f"no generation scoring for family '{family}'; families scored: {', '.join(SCORERS)}")
    budget = max_length - MAX_NEW_TOKENS[family]
    encoded = [encode_prompt(tokenizer, e, system_prompt, budget) for e in examples]
    prompts = [ids_ for ids_, _ in encoded]
    start = time.perf_counter()
    gen = generate_batched(model, tokenizer, prompts, MAX_NEW_TOKENS[family], batch_size, progress)
    elapsed = time.perf_counter() - start
    golds = [e.target for e in examples]
    metrics = SCORERS[family](gen.answers, golds, examples)
    latency = [
        generate_batched(model, tokenizer, [p], MAX_NEW_TOKENS[family], 1, False).batch_seconds[0]
        for p in prompts[:LATENCY_PROMPTS]
    ]
    metrics.update(
        examples=len(examples),
        truncated_prompts=sum(t for _, t in encoded),
        examples_per_s=len(examples) / elapsed,
        latency_ms_p50=1000 * statistics.median(latency),
        mean_new_tokens=sum(gen.new_tokens) / len(examples),
    )
    predictions = [
        {"id": ids[i] if ids else i, "prompt": e.prompt, "answer": a, "gold": e.target}
        | ({"predicted": first_label(a, e.labels)} if e.labels else {})
        for i, (e, a) in enumerate(zip(examples, gen.answers, strict=True))
    ]
    return GenerationEval(metrics, predictions, score_by_source(family, gen.answers, examples))


def evaluate_generation(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: FinancialTask,
    records: list[dict[str, Any]],
    batch_size: int = 16,
    system_prompt: str | None = None,
    progress: bool = True,
) -> GenerationEval:
    """Score a task's records (a headline or NER record yields several examples)."""
    pairs = [(r.get("id", i), e) for i, r in enumerate(records) for e in build_examples(task, r)]
    result = evaluate_examples(
        model,
        tokenizer,
        [e for _, e in pairs],
        llm_family(task),
        batch_size,
        system_prompt,
        ids=[i for i, _ in pairs],
        progress=progress,
    )
    result.metrics = {"records": len(records), **result.metrics}
    return result
