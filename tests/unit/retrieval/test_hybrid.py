"""Reciprocal-rank fusion against hand-computed ranks, hybrid settings, and ask's cosine guard on fused hits."""

from __future__ import annotations

import json

import pytest

from fintune.cli.main import main
from fintune.errors import UsageError
from fintune.retrieval.ask import best_cosine
from fintune.retrieval.hybrid import HybridSettings, rrf
from fintune.retrieval.stores.base import Hit


def test_rrf_sums_weight_over_k_plus_rank_per_ranking():
    fused = rrf([["a", "b", "c"], ["c", "a", "d"]], [1.0, 1.0], k=60)
    # a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62, d: 1/63
    assert [d for d, _ in fused] == ["a", "c", "b", "d"]
    assert [s for _, s in fused] == pytest.approx([1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62, 1 / 63])


def test_weights_can_reverse_the_order():
    rankings = [["a", "b"], ["b", "a"]]
    assert [d for d, _ in rrf(rankings, [1.0, 1.0], k=60)] == ["a", "b"]  # equal scores: a is first in ranking 0
    fused = rrf(rankings, [1.0, 3.0], k=60)
    # a: 1/61 + 3/62 = 0.06478, b: 1/62 + 3/61 = 0.06531
    assert [d for d, _ in fused] == ["b", "a"]
    assert fused[0][1] == pytest.approx(1 / 62 + 3 / 61)


def test_ties_go_to_the_better_rank_then_to_the_first_ranking():
    # k=0, exact binary fractions: p = 1, x = 1/4 + 0.5/1 = 0.75, y = 1/2 + 0.5/2 = 0.75, q = 1/3
    fused = rrf([["p", "y", "q", "x"], ["x", "y"]], [1.0, 0.5], k=0)
    assert fused == [("p", 1.0), ("x", 0.75), ("y", 0.75), ("q", 1 / 3)]  # x was ranked 1st somewhere, y 2nd at best
    # a = 2/1, b = 2/2 + 1/1: equal, both ranked 1st somewhere; a's first place is in the first ranking
    assert rrf([["a", "b"], ["b", "c"]], [2.0, 1.0], k=0) == [("a", 2.0), ("b", 2.0), ("c", 0.5)]
    assert [d for d, _ in rrf([["y", "x"], ["x", "y"]], [1.0, 1.0], k=2)] == ["y", "x"]


def test_a_repeated_id_counts_once_and_a_zero_weight_ranking_adds_nothing():
    assert rrf([["a", "a", "b"]], [1.0], k=0) == [("a", 1.0), ("b", 1 / 3)]
    assert rrf([["a"], ["b"]], [1.0, 0.0], k=60) == [("a", 1 / 61)]
    with pytest.raises(ValueError, match="2 rankings but 1 weights"):
        rrf([["a"], ["b"]], [1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vector_weight": -1}, "must be >= 0"),
        ({"vector_weight": 0, "keyword_weight": 0}, "needs a positive"),
        ({"rrf_k": -5}, "rrf_k must be >= 0"),
        ({"candidates": 0}, "candidates must be >= 1"),
    ],
)
def test_settings_refuse_meaningless_values(kwargs, message):
    with pytest.raises(UsageError, match=message):
        HybridSettings(**kwargs)
    assert HybridSettings(candidates=20).depth(50) == 50 and HybridSettings().depth(10) == 50


def test_ask_guard_reads_the_cosine_not_the_fused_score():
    plain = [Hit("a", 0.8, "t"), Hit("b", 0.5, "t")]
    assert best_cosine(plain) == 0.8
    fused = [
        Hit("k", 1 / 61 + 1 / 64, "t", vector_score=None, keyword_score=7.0),
        Hit("v", 1 / 62, "t", vector_score=0.41, keyword_score=None),
        Hit("w", 1 / 63, "t", vector_score=0.55, keyword_score=2.0),
    ]
    assert best_cosine(fused) == 0.55  # not 0.0320, the fused score of the first hit
    assert best_cosine([Hit("k", 1 / 61, "t", keyword_score=3.0)]) is None  # no cosine known: nothing to trust
    assert best_cosine([]) is None


def _index(corpus_file, store, model):
    args = ["index", "--model", str(model), "--corpus", str(corpus_file), "--store", str(store), "--collection", "docs"]
    assert main(args) == 0


def test_cli_hybrid_search_json_and_batch(corpus_file, tiny_bert_dir, tmp_path, capsys):
    store = tmp_path / "store"
    _index(corpus_file, store, tiny_bert_dir)
    capsys.readouterr()
    search = ["search", "--store", str(store), "--collection", "docs", "-k", "5", "--json", "--hybrid"]
    # keyword side only: 'company7' occurs in d7 alone, so it ranks first at 1/(60 + 1)
    assert main([*search, "--vector-weight", "0", "Company7 revenue"]) == 0
    out = json.loads(capsys.readouterr().out)
    first = out["results"][0]
    assert first["id"] == "d7" and first["score"] == pytest.approx(1 / 61, abs=1e-6)
    assert first["keyword_score"] > 0 and "vector_score" not in first
    # both sides: every result carries the sides that found it, fused scores best first
    assert main([*search, "Company7 revenue"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert "d7" in [r["id"] for r in results]
    assert all({"vector_score", "keyword_score"} & set(r) for r in results)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 2 / 61 + 1e-6
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"_id": "q1", "text": "Company3 stores"}\n')
    batch = ["search", "--store", str(store), "--collection", "docs", "--queries", str(queries), "-k", "3"]
    assert main([*batch, "--hybrid", "--keyword-weight", "2"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["query_id"] == "q1" and row["results"][0]["id"] == "d3"  # 2/61 from keywords beats any vector rank
    assert main([*batch, "--keyword-weight", "2"]) == 2
    assert "--keyword-weight only apply with --hybrid" in capsys.readouterr().err
    assert main([*batch, "--hybrid", "--mmr"]) == 2
    assert "not both" in capsys.readouterr().err


class RecordingSearcher:
    """Returns fused hits whose best cosine is 0.2 and records how it was asked."""

    def __init__(self):
        self.calls: list[dict] = []

    def search(self, queries, k=10, filter=None, mmr=False, hybrid=None):
        self.calls.append({"k": k, "hybrid": hybrid})
        return [[Hit("k", 1 / 61 + 1 / 62, "t", vector_score=0.2, keyword_score=9.0)]]


def test_ask_passes_hybrid_on_and_guards_on_the_cosine():
    from fintune.retrieval.ask import NOT_FOUND, Answerer

    searcher = RecordingSearcher()
    settings = HybridSettings(keyword_weight=2)
    answer = Answerer(searcher, k=3, min_score=0.3, hybrid=settings).ask("dividend per share?")
    assert searcher.calls == [{"k": 3, "hybrid": settings}]
    assert answer.answer == NOT_FOUND and "best passage score 0.20 is below 0.3" in answer.notes[0]
