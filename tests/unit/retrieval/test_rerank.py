"""The reranker: training pairs, the threshold and AUC by hand, the gate in `rag eval` and `ask`, and a
training run of a few steps on the tiny BERT (folder written whole, threshold chosen, reloadable)."""

from __future__ import annotations

import json
from dataclasses import replace
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
    calibrate_reranker,
    recall_threshold,
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


def test_the_refusal_recall_threshold_is_the_lowest_cut_that_refuses_the_share():
    unanswerable = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    cut = recall_threshold(unanswerable, 0.8)
    # 8 of 10 below the cut: above 0.8, and nothing between 0.8 and it (0.8 x 10 is 8, not 9 by rounding)
    assert sum(u < cut for u in unanswerable) == 8 and 0.8 < cut < 0.80001
    assert sum(u < recall_threshold(unanswerable, 0.75) for u in unanswerable) == 8  # ceil(7.5)
    assert recall_threshold(unanswerable, 1.0) > 0.95  # refuse them all
    with pytest.raises(UsageError, match=r"\(0, 1\]"):
        recall_threshold(unanswerable, 0.0)


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


def test_calibrating_again_moves_the_threshold_to_the_policy_on_the_same_held_out_questions(
    beir, tiny_bert_dir, tmp_path
):
    out = tmp_path / "rr"
    settings = RerankSettings(base=str(tiny_bert_dir), negatives=2, depth=5, max_steps=2, batch_size=4)
    trained = train_reranker(beir, "train", out, FixedSearcher(), replace(settings, refusal_recall=None))
    assert trained["threshold_policy"] == "balanced accuracy"
    reranker = Reranker(out)
    meta = calibrate_reranker(reranker, beir, FixedSearcher(), refusal_recall=1.0)
    assert meta["threshold_policy"] == "refusal recall 1.0" and meta["threshold_refusal_recall"] == 1.0
    assert meta["threshold_validation"] == trained["threshold_validation"]  # the same held-out group
    assert Reranker(out).threshold == reranker.threshold == meta["answerable_threshold"]  # file and object agree
    assert json.loads((out / META).read_text())["settings"]["refusal_recall"] == 1.0
    assert not list(out.glob(".*tmp"))


def test_calibrating_on_data_whose_held_out_groups_changed_is_refused(beir, tiny_bert_dir, tmp_path):
    out = tmp_path / "rr"
    settings = RerankSettings(base=str(tiny_bert_dir), negatives=2, depth=5, max_steps=2, batch_size=4)
    train_reranker(beir, "train", out, FixedSearcher(), settings)
    before = (out / META).read_text()
    reranker = Reranker(out)
    reranker.meta = {**reranker.meta, "threshold_validation": "held-out tickers ZZZ"}
    with pytest.raises(UsageError, match="the data changed since training"):
        calibrate_reranker(reranker, beir, FixedSearcher(), refusal_recall=0.8)
    assert (out / META).read_text() == before  # nothing rewritten


def test_cli_refuses_a_non_beir_folder_and_a_threshold_without_a_reranker(tmp_path, capsys):
    from fintune.cli.main import main

    assert main(["rerank", "train", "--data", str(tmp_path), "--output", str(tmp_path / "rr")]) == 2
    assert "not a BEIR folder" in capsys.readouterr().err and not (tmp_path / "rr").exists()
    args = ["ask", "--store", str(tmp_path / "s"), "--collection", "c", "Q?", "--answerable-threshold", "0.3"]
    assert main(args) == 2
    assert "--answerable-threshold needs a reranker" in capsys.readouterr().err and not (tmp_path / "s").exists()
    assert main(["rerank", "calibrate", "--reranker", str(tmp_path), "--refusal-recall", "1.5"]) == 2
    assert "--refusal-recall must lie in (0, 1]" in capsys.readouterr().err
    assert main(["rerank", "calibrate", "--reranker", str(tmp_path)]) == 2
    assert "not a fintune reranker" in capsys.readouterr().err


def test_the_cli_trains_with_the_library_recipe_by_default():
    from fintune.cli.main import build_parser

    args = build_parser().parse_args(["rerank", "train", "--data", "d", "--output", "o"])
    recipe = RerankSettings()
    assert (args.learning_rate, args.epochs, args.batch_size, args.max_steps, args.negatives, args.depth) == (
        recipe.learning_rate, recipe.epochs, recipe.batch_size, recipe.max_steps, recipe.negatives, recipe.depth
    )  # fmt: skip
    assert args.refusal_recall == recipe.refusal_recall and not args.balanced


def test_the_cli_takes_the_adapters_own_reranker_unless_told_otherwise(tmp_path):
    from fintune.cli.main import build_parser
    from fintune.cli.retrieval import load_reranker

    gate, other = tmp_path / "adapter" / "reranker", tmp_path / "other"
    for folder, threshold in ((gate, 0.7), (other, 0.2)):
        folder.mkdir(parents=True)
        (folder / META).write_text(json.dumps({"answerable_threshold": threshold}))

    def parse(*extra: str):
        args = ["rag", "eval", "--collection", "c", "--queries", "q", "--adapter", str(tmp_path / "adapter")]
        return build_parser().parse_args([*args, *extra])

    found = load_reranker(parse())
    assert found.path == gate and found.threshold == 0.7
    assert load_reranker(parse("--no-reranker")) is None
    assert load_reranker(parse("--reranker", str(other))).path == other  # an explicit one wins
    assert load_reranker(parse("--answerable-threshold", "0.9")).threshold == 0.9
    with pytest.raises(UsageError, match="contradict"):
        load_reranker(parse("--reranker", str(other), "--no-reranker"))
    with pytest.raises(UsageError, match="needs a reranker"):
        load_reranker(parse("--no-reranker", "--answerable-threshold", "0.5"))


def test_an_answerer_for_an_adapter_stands_behind_the_gate_it_carries(tmp_path):
    from fintune.retrieval.ask import REFUSAL_PROBABILITY

    gate = tmp_path / "adapter" / "reranker"
    gate.mkdir(parents=True)
    (gate / META).write_text(json.dumps({"answerable_threshold": 0.8}))
    gated = Answerer.with_adapter_gate(None, str(tmp_path / "adapter"), k=3)
    assert gated.reranker is not None and gated.reranker.path == gate and gated.reranker.threshold == 0.8
    assert gated.refusal_probability is None and gated.k == 3  # the gate decides, not the LLM
    plain = Answerer.with_adapter_gate(None, str(tmp_path))  # an adapter without a gate
    assert plain.reranker is None and plain.refusal_probability == REFUSAL_PROBABILITY
