"""The main job on the embedded defaults: how good are they on the shared dev splits, as they are."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fintune.data.beir import load_beir
from fintune.data.loading import load_records
from fintune.data.tasks import get_task

log = logging.getLogger(__name__)


@dataclass
class DemoRow:
    model: str
    task: str
    metrics: dict[str, float]


def baseline_retrieval(model: str = "minilm", split: str = "dev") -> DemoRow:
    from fintune.embed.evaluate import evaluate_retrieval
    from fintune.embed.model import load_embedder

    task = get_task("financial_qa_10k")
    # The shared corpus has an empty passage: skip it, and say so (load_beir logs the count).
    data = load_beir(task.path(split), split, skip_invalid=True)
    log.info("%s %s: %d queries over %d passages", task.name, split, len(data.queries), len(data.corpus))
    result = evaluate_retrieval(load_embedder(model), data)
    keep = ("ndcg@10", "mrr@10", "recall@10", "corpus_docs_per_s")
    return DemoRow(model, f"{task.name} {split}", {k: result.metrics[k] for k in keep})


def baseline_classification(
    model: str = "smollm2", task_name: str = "fpb", split: str = "dev", limit: int | None = None
) -> DemoRow:
    from fintune.llm.evaluate import evaluate_generation
    from fintune.llm.model import load_causal_lm

    task = get_task(task_name)
    rows = load_records(task.path(split), task=task).rows[:limit]
    lm, tokenizer = load_causal_lm(model)
    result = evaluate_generation(lm, tokenizer, task, rows)
    keep = ("accuracy", "f1_weighted", "accuracy_strict", "examples_per_s")
    return DemoRow(model, f"{task.name} {split} (zero-shot)", {k: result.metrics[k] for k in keep})
