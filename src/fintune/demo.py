"""The main job on the embedded defaults: how good are they on the shared dev splits, as they are."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fintune.config.schema import LLMRunConfig
from fintune.data.beir import load_beir
from fintune.data.loading import load_records
from fintune.data.tasks import get_task

log = logging.getLogger(__name__)
CLASSIFICATION_KEYS = ("accuracy", "f1_weighted", "accuracy_strict", "examples_per_s")


@dataclass
class DemoRow:
    model: str
    task: str
    metrics: dict[str, float]


def baseline_retrieval(model: str = "minilm", split: str = "dev") -> DemoRow:
    from fintune.embed.evaluate import evaluate_retrieval
    from fintune.embed.model import load_embedder

    task = get_task("financial_qa_10k")
    data = load_beir(task.path(split), split)
    log.info("%s %s: %d queries over %d passages", task.name, split, len(data.queries), len(data.corpus))
    return retrieval_row(model, split, evaluate_retrieval(load_embedder(model), data).metrics)


def retrieval_row(model: str, split: str, metrics: dict[str, float]) -> DemoRow:
    keep = ("ndcg@10", "mrr@10", "recall@10", "corpus_docs_per_s")
    return DemoRow(model, f"financial_qa_10k {split}", {k: metrics[k] for k in keep})


def tuned_retrieval(output: str = "runs/demo-minilm", model: str = "minilm"):
    """Fine-tune `model` with the default recipe on the 10-K QA train split; base vs tuned on dev."""
    from fintune.config.schema import EmbedRunConfig
    from fintune.embed.compare import compare_results
    from fintune.embed.train import train_embedder

    task = get_task("financial_qa_10k")
    # the demo reports base vs tuned on the dev split (README "Set up"): no company held out of training
    config = EmbedRunConfig(model=model, data=str(task.path("train")), output=output, validation_group_by="none")
    result = train_embedder(config, overwrite=True)
    data = load_beir(task.path("dev"), "dev")
    # evaluate=True on a BEIR folder with a dev split: train_embedder scored both models
    if result.before_result is None or result.after_result is None:
        raise RuntimeError(f"{task.name}: no before/after scores on the dev split")
    comparison = compare_results(model, output, data, result.before_result, result.after_result)
    return result, comparison


def baseline_classification(
    model: str = "smollm2", task_name: str = "fpb", split: str = "dev", limit: int | None = None
) -> DemoRow:
    from fintune.llm.data import sample_examples
    from fintune.llm.evaluate import evaluate_generation
    from fintune.llm.model import load_causal_lm

    task = get_task(task_name)
    # a seeded sample, not the head: the shared dev files are sorted by label
    rows = sample_examples(load_records(task.path(split), task=task).rows, limit, LLMRunConfig().seed)
    lm, tokenizer = load_causal_lm(model)
    # the same prompt (system prompt included) that the tuned model sees, so the rows compare
    result = evaluate_generation(lm, tokenizer, task, rows, system_prompt=LLMRunConfig().system_prompt)
    return DemoRow(model, f"{task.name} {split} (zero-shot)", {k: result.metrics[k] for k in CLASSIFICATION_KEYS})


def tuned_classification(
    output: str = "runs/demo-smollm2-fpb", task_name: str = "fpb", limit: int | None = None
) -> tuple[DemoRow, float]:
    """LoRA with the default recipe on the task's train split; the adapter scored on dev. Returns the
    row and the training seconds."""
    from fintune.llm.data import sample_examples
    from fintune.llm.evaluate import evaluate_generation
    from fintune.llm.model import load_causal_lm
    from fintune.llm.train import train_llm

    config = LLMRunConfig(task=task_name)
    result = train_llm(config, output, overwrite=True)
    task = get_task(task_name)
    rows = sample_examples(load_records(task.path("dev"), task=task).rows, limit, config.seed)
    lm, tokenizer = load_causal_lm(adapter=output)
    scored = evaluate_generation(lm, tokenizer, task, rows, system_prompt=config.system_prompt)
    row = DemoRow(
        f"smollm2 + LoRA ({output})", f"{task.name} dev (tuned)", {k: scored.metrics[k] for k in CLASSIFICATION_KEYS}
    )
    return row, result.train_seconds


def train_rag_adapter(output: str = "runs/demo-rag-adapter") -> float:
    """The answering adapter with the rag_10k task's recipe (`fintune llm train --task rag_10k`); returns
    the training seconds."""
    from fintune.llm.train import train_llm

    return train_llm(LLMRunConfig(task="rag_10k"), output, overwrite=True).train_seconds


@dataclass
class RagDemo:
    export: str
    index: object  # fintune.retrieval.index.IndexResult
    question: str
    judged: list[str]
    hits: list
    answer: object  # fintune.retrieval.ask.Answer of SmolLM2 (with the adapter when given)
    extractive: object  # the extractive baseline's Answer on the same passages
    adapter: str | None


def rag_demo(
    model: str, store_dir: str = "runs/demo-store", collection: str = "tenk", adapter: str | None = None
) -> RagDemo:
    """The tuned model, exported to int8 ONNX, indexes the whole 10-K corpus in the embedded store;
    one dev question is searched and answered from the retrieved passages by SmolLM2 (with the answering
    adapter when given) and by the extractive baseline that an LLM answer must beat."""
    from fintune.embed.export import export_onnx
    from fintune.rag.extractive import extractive_answer
    from fintune.retrieval.ask import Answerer
    from fintune.retrieval.corpus import read_corpus
    from fintune.retrieval.index import index_corpus
    from fintune.retrieval.search import open_collection
    from fintune.retrieval.stores.embedded import EmbeddedStore

    task = get_task("financial_qa_10k")
    export = f"{store_dir}-model-int8"
    export_onnx(model, export, quantize="int8", overwrite=True)
    corpus = read_corpus(task.path("dev"), skip_invalid=True)  # the shared corpus has one empty passage
    store = EmbeddedStore(store_dir)
    try:
        result = index_corpus(store, collection, corpus, model=export, reembed=True, drop_old=True)
        dev = load_beir(task.path("dev"), "dev")
        qid = next(iter(dev.queries))
        searcher = open_collection(store, collection)
        hits = searcher.search([dev.queries[qid]], k=5)[0]
        answer = Answerer.with_adapter_gate(searcher, adapter).ask(dev.queries[qid])
        extractive = extractive_answer(dev.queries[qid], answer.passages)
    finally:
        store.close()
    return RagDemo(export, result, dev.queries[qid], list(dev.qrels[qid]), hits, answer, extractive, adapter)
