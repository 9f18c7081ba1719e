"""The defaults on slices of the real dev data: retrieval metrics and zero-shot classification."""

from __future__ import annotations

import pytest

from fintune.data.beir import load_beir
from fintune.data.tasks import get_task

pytestmark = pytest.mark.slow


def test_minilm_retrieval_on_a_10k_slice(beir_slice):
    from fintune.embed.evaluate import evaluate_retrieval
    from fintune.embed.model import load_embedder

    data = load_beir(beir_slice, "dev")
    result = evaluate_retrieval(load_embedder("minilm"), data, batch_size=32)
    m = result.metrics
    assert m["queries"] == 40 and m["corpus_size"] == len(data.corpus)
    # A real model on real questions: far above chance (1/corpus), below perfect.
    assert 0.4 < m["ndcg@10"] < 1.0
    assert m["recall@1"] <= m["recall@5"] <= m["recall@10"] <= m["recall@100"]
    assert m["mrr@10"] >= m["recall@1"]
    assert m["corpus_docs_per_s"] > 0 and 0 < m["query_latency_ms_p50"] <= m["query_latency_ms_p95"]
    # The means are the means of the per-query values the report will use.
    assert m["ndcg@10"] == pytest.approx(sum(q["ndcg@10"] for q in result.per_query.values()) / 40)


def test_smollm2_zero_shot_fpb_answers_stop_and_score(fpb_dev_rows):
    from fintune.llm.evaluate import evaluate_generation
    from fintune.llm.model import load_causal_lm

    model, tokenizer = load_causal_lm("smollm2")
    result = evaluate_generation(model, tokenizer, get_task("fpb"), fpb_dev_rows, batch_size=8)
    m = result.metrics
    assert m["examples"] == 24 and 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["f1_weighted"] <= 1.0
    assert len(result.predictions) == 24
    assert all(p["gold"] in ("negative", "neutral", "positive") for p in result.predictions)
    # The model answers, and most answers name one of the labels.
    assert m["no_label_rate"] < 0.5
    assert all("<|im_end|>" not in p["answer"] for p in result.predictions)


def test_smollm2_numeric_task_is_scored_by_its_family(shared_data):
    from fintune.data.loading import load_records
    from fintune.llm.evaluate import evaluate_generation
    from fintune.llm.model import load_causal_lm

    task = get_task("formula")
    rows = load_records(task.path("train", root=shared_data), task=task).rows[:6]
    model, tokenizer = load_causal_lm("smollm2")
    result = evaluate_generation(model, tokenizer, task, rows, batch_size=6)
    assert set(result.metrics) >= {"accuracy", "parsed_rate", "examples_per_s"}
    assert result.metrics["examples"] == 6 and 0.0 <= result.metrics["accuracy"] <= result.metrics["parsed_rate"]
    assert all("predicted" not in p for p in result.predictions)


@pytest.mark.parametrize(("task_name", "per_record"), [("headline", 6), ("ner", None)])
def test_multi_question_tasks_score_every_question(shared_data, task_name, per_record):
    from fintune.data.loading import load_records
    from fintune.llm.evaluate import evaluate_generation
    from fintune.llm.model import load_causal_lm
    from fintune.llm.prompts import build_examples

    task = get_task(task_name)
    rows = [r for r in load_records(task.path("dev", root=shared_data), task=task).rows if build_examples(task, r)][:4]
    model, tokenizer = load_causal_lm("smollm2")
    result = evaluate_generation(model, tokenizer, task, rows, batch_size=8)
    expected = sum(len(build_examples(task, r)) for r in rows)
    assert result.metrics["records"] == 4 and result.metrics["examples"] == expected
    if per_record:
        assert expected == 4 * per_record
    assert all(p["predicted"] in (*p["prompt"].split("{")[1].split("}")[0].split("/"), "") for p in result.predictions)
