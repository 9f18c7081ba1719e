"""The reranker: training pairs, the threshold and AUC by hand, the gate in `rag eval` and `ask`, and a
training run of a few steps on the tiny BERT (folder written whole, threshold chosen, reloadable)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fintune.errors import UsageError
from fintune.rag.evaluate import RagSettings, evaluate_rag, extractive_answerer, read_questions, report
from fintune.retrieval.ask import NOT_FOUND, Answer, Answerer, best_cosine
from fintune.retrieval.rerank import (
    META,
    Reranker,
    RerankSettings,
    best_threshold,
    roc_auc,
    train_reranker,
    training_pairs,
)
from fintune.retrieval.stores.base import Hit
from tests.conftest import write_beir

PASSAGES = {f"d{i}": f"Company{i} reported revenue of {i + 1} billion dollars in 2023." for i in range(6)}
QUESTIONS = {f"q{i}": f"What revenue did Company{i} report in 2023?" for i in range(4)}


def test_training_pairs_are_the_judged_passages_and_the_best_ranked_others():
    hits = [Hit(d, 1 - 0.1 * i, PASSAGES[d]) for i, d in enumerate(["d3", "d1", "d0", "d2"])]
    pairs = training_pairs([("Q?", {"d1"})], [hits], PASSAGES, negatives=2)
    # d1 is judged (label 1) and skipped as a negative; the negatives are the two best-ranked others
    assert pairs == [("Q?", PASSAGES["d1"], 1.0), ("Q?", PASSAGES["d3"], 0.0), ("Q?", PASSAGES["d0"], 0.0)]


def test_threshold_maximises_balanced_accuracy_and_auc_counts_ties_half():
    answerable, unanswerable = [0.9, 0.8, 0.3], [0.2, 0.4, 0.1, 0.35]
    # at 0.8: 2/3 answerable kept, 4/4 unanswerable refused -> 0.833; at 0.3: 3/3 and 2/4 -> 0.75
    threshold, balanced = best_threshold(answerable, unanswerable)
    assert threshold == 0.8 and balanced == pytest.approx(5 / 6)
    assert roc_auc([0.9, 0.5], [0.5, 0.1]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    with pytest.raises(UsageError):
        best_threshold([0.5], [])


class NameReranker(Reranker):
    """A reranker whose score is whether the passage names the question's company: the gate's mechanics
    without a model."""

    def __init__(self, threshold: float = 0.5):
        self.path, self.meta, self.threshold, self._model = Path("name-reranker"), {}, threshold, None

    def score_pairs(self, pairs, batch_size=32):
        return [0.9 if q.split()[3] in p.split() else 0.1 for q, p in pairs]


class FixedSearcher:
    """Ranks d5, d4, ..., d0 for every query: only d5 and d4 make a top 2."""

    def __init__(self) -> None:
        self.depths: list[int] = []

    def search(self, queries, k=10, *args, **kwargs):
        self.depths.append(k)
        ranked = [Hit(d, 0.9 - 0.1 * i, PASSAGES[d]) for i, d in enumerate(reversed(PASSAGES))]
        return [ranked[:k] for _ in queries]


@pytest.fixture
def beir(tmp_path) -> Path:
    rows = [
        {"_id": q, "text": t, "answer": f"{i + 1} billion dollars", "ticker": f"T{i}"}
        for i, (q, t) in enumerate(QUESTIONS.items())
    ]
    return write_beir(tmp_path, PASSAGES, rows, "train", {f"q{i}": f"d{i}" for i in range(4)})


def test_rag_eval_reranks_the_candidates_and_every_answerer_refuses_below_the_gate(beir):
    questions, source = read_questions(beir, "train")
    searcher = FixedSearcher()
    called: list[str] = []

    def llm(question, hits):
        called.append(question)
        return Answer(question, f"It reported it. [{hits[0].id}]", True, [hits[0].id], False, hits)

    settings = RagSettings(k=2, refusal_share=0.5, bertscore_encoder=None, reranker=NameReranker(), rerank_depth=6)
    run = evaluate_rag(searcher, questions, extractive_answerer() | {"adapter": llm}, settings, progress=False)
    assert searcher.depths == [1] + [7] * 4  # warm-up, then the rerank depth plus the judged passage
    by_q = {r["query_id"]: r for r in run.predictions if r["answerer"] == "adapter"}
    answered = [q for q, r in by_q.items() if not r["withheld"]]
    # without the reranker no question finds its passage in the top 2 (d5, d4); with it, each answerable does
    assert answered and all(by_q[q]["passages"][0] == f"d{q[1]}" for q in answered)
    for row in run.predictions:
        if row["withheld"]:  # no passage names the company: the gate refuses for every answerer
            assert row["answer"] == NOT_FOUND and row["notes"][0].startswith("reranker: best passage 0.10")
    assert len(called) == len(answered)  # the LLM is never asked about a gated question
    metrics = report(run, settings, source)
    assert metrics["recall@k"] == 1.0 and metrics["refusal_recall"] == 1.0
    assert metrics["reranker"] == "name-reranker" and metrics["answerable_threshold"] == 0.5


def test_ask_reranks_and_refuses_below_the_gate_without_loading_the_llm():
    searcher = FixedSearcher()
    answerer = Answerer(searcher, k=2, reranker=NameReranker(), rerank_depth=5)  # type: ignore[arg-type]
    answer = answerer.ask("What revenue did Company9 report in 2023?")
    assert searcher.depths == [5]  # the rerank depth, not k
    assert answer.answer == NOT_FOUND and "reranker" in answer.notes[0] and answerer._model is None
    assert [p["rerank_score"] for p in answer.as_dict()["passages"]] == [0.1, 0.1]  # shown in --json


def test_the_cosine_guard_reads_the_best_cosine_whatever_the_order():
    reranked = [Hit("a", 0.2, "x", rerank_score=0.9), Hit("b", 0.6, "y", rerank_score=0.1)]
    assert best_cosine(reranked) == 0.6  # not the first hit's: reranking reorders them


def test_a_folder_without_reranker_metadata_is_refused(tmp_path):
    with pytest.raises(UsageError, match="not a fintune reranker"):
        Reranker(tmp_path)


def test_training_writes_a_whole_reranker_with_a_threshold_from_held_out_groups(beir, tiny_bert_dir, tmp_path):
    out = tmp_path / "rr"
    settings = RerankSettings(base=str(tiny_bert_dir), negatives=2, depth=5, max_steps=2, batch_size=4)
    meta = train_reranker(beir, "train", out, FixedSearcher(), settings)
    assert json.loads((out / META).read_text()) == meta
    assert meta["threshold_validation"].startswith("held-out tickers") and meta["pairs"] == 3 * 3  # 3 train groups
    assert 0.0 <= meta["answerable_threshold"] <= 1.0 and 0.0 <= meta["gate_roc_auc"] <= 1.0
    reloaded = Reranker(out)
    scores = reloaded.scores("What revenue did Company1 report?", [PASSAGES["d1"], PASSAGES["d2"]])
    assert len(scores) == 2 and all(0.0 < s < 1.0 for s in scores)  # a sigmoid probability per pair
    assert not list(tmp_path.glob(".rr*"))  # no temporary or work folder left beside it
    with pytest.raises(UsageError, match="already exists"):
        train_reranker(beir, "train", out, FixedSearcher(), settings)


def test_cli_refuses_a_non_beir_folder_and_a_threshold_without_a_reranker(tmp_path, capsys):
    from fintune.cli.main import main

    assert main(["rerank", "train", "--data", str(tmp_path), "--output", str(tmp_path / "rr")]) == 2
    assert "not a BEIR folder" in capsys.readouterr().err and not (tmp_path / "rr").exists()
    args = ["ask", "--store", str(tmp_path / "s"), "--collection", "c", "Q?", "--answerable-threshold", "0.3"]
    assert main(args) == 2
    assert "--answerable-threshold needs --reranker" in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_the_cli_trains_with_the_library_recipe_by_default():
    from fintune.cli.main import build_parser

    args = build_parser().parse_args(["rerank", "train", "--data", "d", "--output", "o"])
    recipe = RerankSettings()
    assert (args.learning_rate, args.epochs, args.batch_size, args.max_steps, args.negatives, args.depth) == (
        recipe.learning_rate, recipe.epochs, recipe.batch_size, recipe.max_steps, recipe.negatives, recipe.depth
    )  # fmt: skip
