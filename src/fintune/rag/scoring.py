"""Per-question RAG scores and their aggregation: answer quality, citations, refusals, retrieval, latency.

Which question counts where (each metric says what it is a share of):
- `answerable`: a judged passage is among the passages the answerer was shown. A withheld question (see
  `refusal`) and a retrieval miss are both unanswerable from what was shown: refusing is right there.
- exact_match, token_f1, rouge_l, bertscore_f1: answerable questions with a gold answer; a refusal scores
  0. The answer is compared without its `[id]` citations (SQuAD normalisation for EM and F1).
- citation_accuracy: answerable questions the answerer answered; 1 when it cited (wrote, not attributed by
  word overlap) a judged passage.
- refusal_precision / refusal_recall: refusal is the positive class, unanswerable the gold positive;
  0 when the denominator is empty (scikit-learn's zero_division default).
- recall@k: questions with judged passages; 1 when retrieval's top k (before any withholding) holds one.
- answered: share of all questions not refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fintune.metrics.qa import normalize_answer, token_f1
from fintune.metrics.summarization import bertscore, rouge_scores

CITATION = re.compile(r"\s*\[[^\[\]]*\]")


@dataclass(frozen=True)
class QuestionScore:
    qid: str
    answerable: bool | None  # None: the question names no judged passage
    has_gold: bool
    refused: bool
    prediction: str  # the answer without citations; "" when refused
    reference: str  # the gold answer ("" when none)
    exact_match: float | None  # None: not scored here (no gold answer, or not answerable)
    token_f1: float | None
    cites_judged: bool | None  # None: not scored here (not answerable, or refused)
    retrieved_judged: bool | None  # None: no judged passage
    latency_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def strip_citations(answer: str) -> str:
    return CITATION.sub("", answer).strip()


def score_question(
    qid: str,
    answer: str,
    refused: bool,
    citations: Sequence[str],
    judged: Sequence[str],
    shown: Sequence[str],
    retrieved: Sequence[str],
    gold: str | None,
    latency_ms: float,
) -> QuestionScore:
    """One answer against the gold answer and the judged passage ids (`shown`/`retrieved`: passage ids)."""
    answerable = any(j in shown for j in judged) if judged else None
    has_gold = bool(gold and gold.strip())
    prediction = "" if refused else strip_citations(answer)
    reference = gold.strip() if gold and has_gold else ""
    scored = bool(answerable and has_gold)
    return QuestionScore(
        qid=qid,
        answerable=answerable,
        has_gold=has_gold,
        refused=refused,
        prediction=prediction,
        reference=reference,
        exact_match=float(normalize_answer(prediction) == normalize_answer(reference)) if scored else None,
        token_f1=(token_f1(prediction, reference) if prediction else 0.0) if scored else None,
        cites_judged=any(c in judged for c in citations) if answerable and not refused else None,
        retrieved_judged=any(j in retrieved for j in judged) if judged else None,
        latency_ms=latency_ms,
    )


def _mean(values: Sequence[float | bool | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def _share(hits: int, total: int) -> float:
    return hits / total if total else 0.0


def aggregate(scores: Sequence[QuestionScore], bertscore_encoder: str | None = None) -> dict[str, Any]:
    """The metrics of one answerer over all questions (see the module docstring for each denominator)."""
    if not scores:
        raise ValueError("no questions to aggregate")
    quality = [s for s in scores if s.answerable and s.has_gold]
    judged = [s for s in scores if s.answerable is not None]
    refused_judged = [s for s in judged if s.refused]
    unanswerable = [s for s in judged if not s.answerable]
    correct_refusals = sum(s.refused for s in unanswerable)
    latencies = np.array([s.latency_ms for s in scores])
    metrics: dict[str, Any] = {
        "questions": len(scores),
        "no_gold_answer": sum(not s.has_gold for s in scores),
        "no_judged_passage": len(scores) - len(judged),
        "answerable": len(judged) - len(unanswerable),
        "unanswerable": len(unanswerable),
        "scored_answers": len(quality),
        "recall@k": _mean([s.retrieved_judged for s in scores]),
        "exact_match": _mean([s.exact_match for s in quality]),
        "token_f1": _mean([s.token_f1 for s in quality]),
        "rouge_l": _rouge_l(quality),
        "citation_accuracy": _mean([s.cites_judged for s in scores]),
        "refusal_precision": _share(correct_refusals, len(refused_judged)),
        "refusal_recall": _share(correct_refusals, len(unanswerable)),
        "answered": _share(sum(not s.refused for s in scores), len(scores)),
        "latency_ms_p50": float(np.percentile(latencies, 50)),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
    }
    if bertscore_encoder is not None:
        metrics["bertscore_f1"] = _bertscore_f1(quality, bertscore_encoder)
    return metrics


def _rouge_l(quality: Sequence[QuestionScore]) -> float | None:
    if not quality:
        return None
    return rouge_scores([s.prediction for s in quality], [s.reference for s in quality])["rougeL"]


def _bertscore_f1(quality: Sequence[QuestionScore], encoder: str) -> float | None:
    """Mean BERTScore F1 where a refusal scores 0 (BERTScore of an empty text is undefined)."""
    answered = [s for s in quality if s.prediction]
    if not quality:
        return None
    if not answered:
        return 0.0
    mean_f1 = bertscore([s.prediction for s in answered], [s.reference for s in answered], encoder)["bertscore_f1"]
    return mean_f1 * len(answered) / len(quality)
