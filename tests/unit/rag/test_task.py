"""rag_10k examples: ask's prompt, answer + citation targets, refusals with the judged passage removed."""

from __future__ import annotations

import re

from fintune.rag.refusal import withheld
from fintune.rag.task import rag_examples, target
from fintune.retrieval.ask import NOT_FOUND, rag_prompt
from fintune.retrieval.stores.base import Hit
from tests.unit.rag.conftest import PASSAGES, QUESTIONS


def shown_ids(prompt: str) -> list[str]:
    return re.findall(r"^\[(d\d+)\]", prompt, flags=re.MULTILINE)


def test_examples_follow_asks_prompt_cite_the_judged_passage_or_refuse(beir, searcher):
    examples, records = rag_examples(beir, "train", searcher, k=2, share=0.5, seed=0)
    assert records == 5 and len(examples) == 4  # q4 has no answer text
    removed = withheld([f"q{i}" for i in range(4)], 0.5, 0)
    assert len(removed) == 2
    for i, example in enumerate(examples):
        qid, judged = f"q{i}", f"d{i}"
        ids = shown_ids(example.prompt)
        assert len(ids) == 2  # always k passages, distractors included
        if qid in removed:
            assert example.target == NOT_FOUND and judged not in ids
        else:
            assert example.target == target(f"Company{i} reported {i + 1} billion dollars.", judged)
            assert example.target.endswith(f" [{judged}]") and judged in ids
        passages = [Hit(d, 0.0, PASSAGES[d]) for d in ids]
        assert example.prompt == rag_prompt(QUESTIONS[qid], passages)  # exactly what `ask` sends
    assert searcher.calls == [(4, 3)]  # one batch; k + 1 judged passage deep


def test_the_registry_task_builds_them_and_reuses_the_cached_retrieval(beir, searcher, tmp_path, monkeypatch):
    from fintune.llm.data import task_examples
    from fintune.rag import task as rag_task

    monkeypatch.setenv("FINTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(rag_task, "task_searcher", lambda folder: searcher)
    first = task_examples("rag_10k", beir, "train")
    assert first.family == "qa" and len(first.examples) == 4 and first.records == 5
    assert task_examples("rag_10k", beir, "train").examples == first.examples
    assert len(searcher.calls) == 1  # the second run read the cache beside the index


def test_only_a_rag_10k_run_with_the_gate_on_carries_a_reranker(tmp_path, monkeypatch):
    from fintune.config.schema import LLMRunConfig
    from fintune.llm.train import DEBUG_STEPS, task_bundle
    from fintune.rag import task as rag_task

    calls = []

    def fake_gate(folder, split, work, max_steps=-1):
        calls.append((folder, split, max_steps))
        return work / "reranker"

    monkeypatch.setattr(rag_task, "train_gate", fake_gate)
    assert task_bundle(LLMRunConfig(task="fpb"), tmp_path) == {}
    assert task_bundle(LLMRunConfig(task="rag_10k", answerability_gate=False), tmp_path) == {}
    cfg = LLMRunConfig(task="rag_10k", dataset_path=str(tmp_path), debug=True)
    assert task_bundle(cfg, tmp_path / "w") == {"reranker": tmp_path / "w" / "reranker"}
    assert calls == [(tmp_path, "train", DEBUG_STEPS)]  # the run's data and split; debug trains a few steps


def test_a_finished_gate_in_the_work_folder_is_reused_on_resume(tmp_path, monkeypatch):
    from fintune.rag.task import adapter_gate, train_gate
    from fintune.retrieval import rerank

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(rerank, "train_reranker", no_training)
    (tmp_path / "reranker").mkdir()
    (tmp_path / "reranker" / rerank.META).write_text("{}")
    assert train_gate(tmp_path / "data", "train", tmp_path) == tmp_path / "reranker"
    assert adapter_gate(tmp_path) == tmp_path / "reranker" and adapter_gate(tmp_path / "data") is None
    assert adapter_gate(None) is None
