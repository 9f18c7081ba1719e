"""RAG scoring on hand-computed cases: answer quality, citations, refusals, retrieval, latency."""

from __future__ import annotations

import pytest

from fintune.rag.scoring import aggregate, score_question, strip_citations

GOLD_A = "Net sales were $383.3 billion."
GOLD_B = "Revenue grew 7 percent."


def scores():
    """A: right and cited; B: 3 of 4 words, cites a distractor; C: withheld, refused (right);
    D: answerable, refused (wrong); E: withheld, answered anyway."""
    return [
        score_question(
            "A", "Net sales were $383.3 billion [d1]", False, ["d1"], ["d1"], ["d1", "d2"], ["d1"], GOLD_A, 10
        ),
        score_question(
            "B", "Revenue grew 5 percent [d2]", False, ["d2"], ["d1"], ["d2", "d1"], ["d2", "d1"], GOLD_B, 20
        ),
        score_question("C", "The passages do not contain the answer.", True, [], ["d3"], ["d4", "d5"], ["d3"], "x", 30),
        score_question("D", "The passages do not contain the answer.", True, [], ["d1"], ["d1"], ["d1"], GOLD_A, 40),
        score_question("E", "It grew [d4]", False, ["d4"], ["d3"], ["d4", "d5"], ["d4", "d5"], "y", 50),
    ]


def test_one_answer_is_scored_without_its_citations():
    a, b, c, *_ = scores()
    assert strip_citations("Sales rose [d1] and fell [d2, d3].") == "Sales rose and fell."
    assert (a.answerable, a.exact_match, a.token_f1, a.cites_judged, a.retrieved_judged) == (True, 1.0, 1.0, True, True)
    # revenue/grew/percent shared of four words each side: P = R = 3/4
    assert b.exact_match == 0.0 and b.token_f1 == pytest.approx(0.75) and b.cites_judged is False
    # the judged passage was not shown: nothing to score the answer on, the refusal is right
    assert c.answerable is False and c.exact_match is None and c.cites_judged is None and c.prediction == ""
    assert c.retrieved_judged is True  # retrieval found it; withholding happened after


def test_aggregate_metrics_match_the_hand_computed_values():
    m = aggregate(scores())
    assert (m["questions"], m["answerable"], m["unanswerable"], m["scored_answers"]) == (5, 3, 2, 3)
    assert m["exact_match"] == pytest.approx(1 / 3)  # A of A, B, D
    assert m["token_f1"] == pytest.approx((1 + 0.75 + 0) / 3)
    assert m["rouge_l"] == pytest.approx((1 + 0.75 + 0) / 3)  # LCS 3 of 4 tokens for B, D refused
    assert m["citation_accuracy"] == pytest.approx(1 / 2)  # A right, B wrong (D refused: not counted)
    assert m["refusal_precision"] == pytest.approx(1 / 2)  # refused C (right) and D (wrong)
    assert m["refusal_recall"] == pytest.approx(1 / 2)  # C refused, E answered
    assert m["answered"] == pytest.approx(3 / 5)
    assert m["recall@k"] == pytest.approx(4 / 5)  # E's judged d3 was not retrieved
    assert m["latency_ms_p50"] == 30 and m["latency_ms_p95"] == pytest.approx(48)  # 40 + 0.8 x (50 - 40)


def test_a_question_without_gold_answer_counts_for_retrieval_and_citation_only():
    no_gold = score_question("F", "It is [d1]", False, ["d1"], ["d1"], ["d1"], ["d1"], None, 5)
    assert no_gold.exact_match is None and no_gold.token_f1 is None and no_gold.cites_judged is True
    m = aggregate([*scores(), no_gold])
    assert m["no_gold_answer"] == 1 and m["scored_answers"] == 3
    assert m["exact_match"] == pytest.approx(1 / 3)  # unchanged
    assert m["citation_accuracy"] == pytest.approx(2 / 3)  # A, F right; B wrong


def test_no_refusal_gives_zero_precision_not_a_division_error():
    m = aggregate(scores()[:2])
    assert m["refusal_precision"] == 0.0 and m["refusal_recall"] == 0.0 and m["answered"] == 1.0
