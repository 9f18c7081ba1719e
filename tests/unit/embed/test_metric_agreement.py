"""The card's metrics (fintune.metrics.retrieval) and early stopping's (sentence-transformers'
InformationRetrievalEvaluator) score the same ranking alike: ties, graded relevance and the k cut-off."""

from __future__ import annotations

import json
import math

import pytest
import torch
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

from fintune.data.beir import load_beir
from fintune.embed.evaluate import GradedIREvaluator, evaluate_retrieval, ir_evaluator, top_k_rankings
from fintune.metrics.retrieval import mean_metrics, per_query_metrics

DOCS = [f"d{i:02d}" for i in range(15)]
KEYS = {"ndcg@k": "ndcg@10", "mrr@k": "mrr@10", "recall@k": "recall@10", "precision@k": "precision@10"}


def _scores() -> torch.Tensor:
    s = torch.linspace(1.0, 0.3, len(DOCS)).repeat(4, 1)  # d00 best ... d14 worst
    s[0, 5] = s[0, 2]  # q0: its relevant d05 ties with the better-ranked d02 (a duplicate passage)
    s[1, 9:13] = s[1, 9]  # q1: d09..d12 tie across the cut-off at 10; d12 is relevant
    s[2, 1], s[2, 3] = s[2, 3].item(), s[2, 1].item()  # q2: its grade-1 d03 at rank 2, grade-2 d01 at rank 4
    return s


QRELS = {
    "q0": {"d05": 1.0},
    "q1": {"d12": 1.0, "d14": 1.0},
    "q2": {"d01": 2.0, "d03": 1.0},
    "q3": {f"d{i:02d}": 1.0 for i in range(3, 15)},  # 12 relevant: more than k
}


def _library_metrics(evaluator: InformationRetrievalEvaluator, scores: torch.Tensor) -> dict[str, float]:
    """The evaluator's own ranking and metrics (it sorts by score, then corpus id) from these scores."""
    rows = {q: scores[i].tolist() for i, q in enumerate(QRELS)}
    hits = [[{"corpus_id": d, "score": s} for d, s in zip(DOCS, rows[q], strict=True)] for q in evaluator.queries_ids]
    out = evaluator.compute_metrics(hits)
    return {ours: out[theirs][10] for theirs, ours in KEYS.items()} | {"map@100": out["map@k"][100]}


def _evaluator(cls, qrels) -> InformationRetrievalEvaluator:
    kwargs = {"mrr_at_k": [10], "ndcg_at_k": [10], "precision_recall_at_k": [10], "map_at_k": [100]}
    relevant = qrels if cls is GradedIREvaluator else {q: set(d) for q, d in qrels.items()}
    return cls({q: q for q in qrels}, {d: d for d in DOCS}, relevant, **kwargs)


def _fintune_metrics(scores: torch.Tensor, qrels) -> dict[str, float]:
    rankings = dict(zip(QRELS, top_k_rankings(scores, DOCS, k=len(DOCS)), strict=True))
    return mean_metrics(per_query_metrics(rankings, qrels))


def test_ties_rank_in_doc_id_order_whatever_the_corpus_order():
    scores = _scores()
    assert top_k_rankings(scores, DOCS, k=10)[0][:4] == ["d00", "d01", "d02", "d05"]
    assert top_k_rankings(scores, DOCS, k=10)[1][9] == "d09"  # of the four tied at the cut-off, the lowest id
    flipped = DOCS[::-1]
    assert top_k_rankings(scores.flip(1), flipped, k=10) == top_k_rankings(scores, DOCS, k=10)


def test_binary_relevance_gives_the_same_figures_as_sentence_transformers():
    binary = {q: dict.fromkeys(docs, 1.0) for q, docs in QRELS.items()}
    library = _library_metrics(_evaluator(InformationRetrievalEvaluator, binary), _scores())
    ours = _fintune_metrics(_scores(), binary)
    for key, value in library.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key
    assert 0 < ours["ndcg@10"] < 1 and ours["recall@10"] < 1  # the cases above cost something


def test_graded_relevance_is_why_the_stock_evaluator_differs_and_the_recipes_does_not():
    stock = _library_metrics(_evaluator(InformationRetrievalEvaluator, QRELS), _scores())
    graded = _library_metrics(_evaluator(GradedIREvaluator, QRELS), _scores())
    ours = _fintune_metrics(_scores(), QRELS)
    # q2 ranks its grade-1 document above its grade-2 one: a set of relevant ids cannot see that
    q2_graded = (1 / math.log2(3) + 2 / math.log2(5)) / (2 + 1 / math.log2(3))
    assert ours["ndcg@10"] == pytest.approx(graded["ndcg@10"], abs=1e-6)
    assert stock["ndcg@10"] - ours["ndcg@10"] > 0.01
    per_query = per_query_metrics(dict(zip(QRELS, top_k_rankings(_scores(), DOCS, 15), strict=True)), QRELS)
    assert per_query["q2"]["ndcg@10"] == pytest.approx(q2_graded)
    for key in ("mrr@10", "recall@10", "precision@10", "map@100"):
        assert ours[key] == pytest.approx(graded[key], abs=1e-6), key


@pytest.fixture
def graded_beir_with_duplicates(tmp_path):
    """12 passages, two of them exact copies of relevant ones under lower ids; grades 1 and 2."""
    texts = [f"Company{i} reported revenue of {i + 1} billion dollars in 2023." for i in range(10)]
    corpus = [{"_id": f"d{i:02d}", "text": t} for i, t in enumerate(texts)]
    corpus += [{"_id": "a00", "text": texts[3]}, {"_id": "a01", "text": texts[7]}]  # ids sort before d03, d07
    queries = [{"_id": f"q{i}", "text": f"What revenue did Company{i} report?"} for i in range(10)]
    rows = [f"q{i}\td{i:02d}\t{2 if i % 3 == 0 else 1}" for i in range(10)] + ["q4\td05\t1", "q8\td02\t2"]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return load_beir(tmp_path, "dev")


def test_the_card_and_the_training_evaluator_agree_on_a_real_model(tiny_model, graded_beir_with_duplicates):
    data = graded_beir_with_duplicates
    card = evaluate_retrieval(tiny_model, data).metrics
    evaluator = ir_evaluator(data)  # every passage is judged or sampled: the same corpus as the card's
    assert len(evaluator.corpus) == len(data.corpus)
    early_stopping = evaluator(tiny_model)
    for key in ("ndcg@10", "mrr@10", "recall@10", "precision@10", "map@100"):
        assert early_stopping[f"dev_cosine_{key}"] == pytest.approx(card[key], abs=1e-6), key
