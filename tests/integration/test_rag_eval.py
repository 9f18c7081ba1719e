"""`fintune rag eval` on a tiny real slice: 50 passages of the shared 10-K corpus in an embedded MiniLM store,
5 dev questions, the extractive baseline and base SmolLM2 (few new tokens, no BERTScore)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fintune.cli.main import main
from fintune.data.beir import load_beir
from fintune.data.tasks import get_task
from fintune.rag import task as rag_task
from fintune.retrieval.corpus import read_corpus
from fintune.retrieval.index import index_corpus
from fintune.retrieval.stores.embedded import EmbeddedStore
from tests.conftest import write_jsonl

pytestmark = pytest.mark.slow  # real models and the shared data

KEYS = ("recall@k", "exact_match", "token_f1", "rouge_l", "citation_accuracy", "refusal_precision")
KEYS += ("refusal_recall", "answered", "latency_ms_p50")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a busy shared CI machine two threads spin against each other (6x slower
    generation measured on a loaded 2-core box); the answers do not depend on it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_rag(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    """(store folder, BEIR folder): 5 dev questions, their passages and 45 distractors, indexed with MiniLM."""
    data = load_beir(get_task("financial_qa_10k").path("dev", root=shared_data), "dev")
    picked = list(data.qrels)[:5]
    judged = {d for q in picked for d in data.qrels[q]}
    others = [d for d in data.corpus if d not in judged][: 50 - len(judged)]
    root = tmp_path_factory.mktemp("rag")
    beir = root / "beir"
    write_jsonl(beir / "corpus.jsonl", [data.corpus[d] for d in [*judged, *others]])
    write_jsonl(beir / "queries.jsonl", [data.query_fields[q] for q in picked])
    (beir / "qrels").mkdir()
    rows = "".join(f"{q}\t{d}\t1\n" for q in picked for d in data.qrels[q])
    (beir / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    store = EmbeddedStore(root / "store")
    try:
        index_corpus(store, "tenk", read_corpus(beir), model="minilm", progress=False)
    finally:
        store.close()
    return root / "store", beir


def test_rag_eval_scores_extractive_and_base_on_real_passages(tiny_rag, tmp_path):
    store, beir = tiny_rag
    out, preds = tmp_path / "m.json", tmp_path / "p.jsonl"
    args = ["rag", "eval", "--store", store, "--collection", "tenk", "--queries", beir, "--split", "dev"]
    # k 2 and 8 new tokens: the shortest prompts and answers that still exercise the whole path
    args += ["-k", "2", "--no-bertscore", "--max-new-tokens", "8", "--output", out, "--predictions", preds]
    assert main([str(a) for a in args]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["answerer"] == "base" and metrics["questions"] == 5
    for scores in (metrics, metrics["baselines"]["extractive"], metrics["baselines"]["base"]):
        assert all(key in scores for key in KEYS)
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(rows) == 10 and {r["answerer"] for r in rows} == {"extractive", "base"}
    withheld = [r for r in rows if r["withheld"]]
    assert len(withheld) == 2 and len({r["query_id"] for r in withheld}) == 1  # 20% of 5, for both answerers
    assert all(not set(r["judged"]) & set(r["passages"]) and len(r["passages"]) == 2 for r in withheld)
    extractive = metrics["baselines"]["extractive"]
    assert extractive["recall@k"] > 0.5  # MiniLM finds most judged passages among 50
    assert extractive["token_f1"] > 0  # the best sentence shares words with the gold answer
    assert isinstance(metrics["beats_extractive"], bool) and metrics["verdict"]


def test_questions_of_another_corpus_are_refused(tiny_rag, tmp_path, capsys):
    store, _ = tiny_rag
    queries = write_jsonl(tmp_path / "q.jsonl", [{"_id": "x", "text": "What?", "answer": "a", "relevant": ["nope"]}])
    args = ["rag", "eval", "--store", store, "--collection", "tenk", "--queries", queries, "--no-llm"]
    assert main([str(a) for a in args]) == 2
    assert "holds none of the 1 passages judged" in capsys.readouterr().err


def test_limit_scores_a_seeded_sample_not_the_first_questions(tiny_rag, tmp_path):
    """The shared queries are grouped by company, so `--limit` draws a seeded sample, kept in file order."""
    store, beir = tiny_rag
    ids = [json.loads(line)["_id"] for line in (beir / "queries.jsonl").read_text().splitlines()]
    picked = {}
    for seed in (0, 1, 2, 3):
        preds = tmp_path / f"p{seed}.jsonl"
        args = ["rag", "eval", "--store", store, "--collection", "tenk", "--queries", beir, "--no-llm"]
        args += [
            "--limit",
            "2",
            "--seed",
            str(seed),
            "--no-bertscore",
            "--predictions",
            preds,
            "--output",
            tmp_path / "m",
        ]
        assert main([str(a) for a in args]) == 0
        picked[seed] = [json.loads(line)["query_id"] for line in preds.read_text().splitlines()]
        assert len(picked[seed]) == 2 and picked[seed] == sorted(picked[seed], key=ids.index)  # file order
    assert len({tuple(p) for p in picked.values()}) > 1  # the seed draws; a head would be the same every time


def test_answering_adapter_trains_on_rag_prompts_and_is_scored_beside_the_baselines(tiny_rag, tmp_path, monkeypatch):
    """`llm train --task rag_10k` on a BEIR folder (its own small index) and `rag eval --adapter`: the
    adapter is the answerer, both baselines are kept, every question is scored by all three; the adapter
    carries its answerability gate (a reranker trained on the same split), which `rag eval` uses unless told
    not to."""
    store, beir = tiny_rag
    data = tmp_path / "beir"
    shutil.copytree(beir, data)
    shutil.copy(data / "qrels" / "dev.tsv", data / "qrels" / "train.tsv")  # the 5 questions as a train split
    monkeypatch.setattr(rag_task, "index_folder", lambda folder: tmp_path / "task-index")  # not the user's cache
    adapter = tmp_path / "adapter"
    train = ["llm", "train", "--task", "rag_10k", "--data", data, "--output", adapter]
    train += ["--max-steps", "2", "--batch-size", "2", "--eval-limit", "1"]
    assert main([str(a) for a in train]) == 0
    assert (tmp_path / "task-index" / "retrieved_train.json").is_file()  # prompts came from a real index
    gate = json.loads((adapter / "reranker" / "fintune_reranker.json").read_text())
    assert gate["split"] == "train" and gate["data"] == str(data.resolve()) and gate["pairs"] > 0
    assert not list(tmp_path.glob(".adapter*"))  # the gate trained in the work folder, which is gone
    out, preds = tmp_path / "m.json", tmp_path / "p.jsonl"
    args = ["rag", "eval", "--store", store, "--collection", "tenk", "--queries", beir, "--adapter", adapter]
    args += ["-k", "2", "--no-bertscore", "--max-new-tokens", "8", "--output", out, "--predictions", preds]
    assert main([str(a) for a in args]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["answerer"] == "adapter" and metrics["adapter"] == str(adapter)
    assert (
        metrics["reranker"] == str(adapter / "reranker")
        and metrics["answerable_threshold"] == gate["answerable_threshold"]
    )
    assert set(metrics["baselines"]) == {"extractive", "base"} and all(key in metrics for key in KEYS)
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    by_answerer = {name: sorted(r["query_id"] for r in rows if r["answerer"] == name) for name in metrics["baselines"]}
    assert (
        by_answerer["extractive"]
        == by_answerer["base"]
        == sorted(r["query_id"] for r in rows if r["answerer"] == "adapter")
    )
    assert len(by_answerer["base"]) == 5
    assert main([str(a) for a in [*args, "--no-reranker"]]) == 0
    assert "reranker" not in json.loads(out.read_text())  # the plain pipeline on request


def test_a_reranker_trains_on_real_retrieval_and_gates_rag_eval(tiny_rag, tmp_path, monkeypatch):
    """`rerank train` from the packaged MiniLM on negatives a real index returned, then `rag eval --reranker`:
    the report names it, and every question it gates is refused by the answerer with its note."""
    store, beir = tiny_rag
    data = tmp_path / "beir"
    shutil.copytree(beir, data)
    shutil.copy(data / "qrels" / "dev.tsv", data / "qrels" / "train.tsv")
    monkeypatch.setattr(rag_task, "index_folder", lambda folder: tmp_path / "task-index")
    out = tmp_path / "reranker"
    train = ["rerank", "train", "--data", data, "--output", out, "--max-steps", "2", "--batch-size", "4"]
    assert main([str(a) for a in train]) == 0
    meta = json.loads((out / "fintune_reranker.json").read_text())
    assert meta["pairs"] > 0 and 0 <= meta["answerable_threshold"] <= 1
    metrics_file, preds = tmp_path / "m.json", tmp_path / "p.jsonl"
    args = ["rag", "eval", "--store", store, "--collection", "tenk", "--queries", beir, "--no-llm", "-k", "2"]
    args += ["--reranker", out, "--answerable-threshold", "0.5", "--no-bertscore", "--output", metrics_file]
    args += ["--predictions", preds]
    assert main([str(a) for a in args]) == 0
    metrics = json.loads(metrics_file.read_text())
    assert metrics["reranker"] == str(out) and metrics["answerable_threshold"] == 0.5 and metrics["questions"] == 5
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    gated = [r for r in rows if r["notes"] and r["notes"][0].startswith("reranker:")]
    assert all(r["answer"] == "The passages do not contain the answer." for r in gated)
