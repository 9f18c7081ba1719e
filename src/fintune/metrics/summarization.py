"""Summary scoring: ROUGE-1/2/L (Google's rouge-score) and BERTScore with a local encoder (no hub).

BERTScore defaults to the packaged all-MiniLM-L6-v2 (all 6 layers), so scores are comparable between
runs of fintune, not with papers that use roberta-large layer 17.
"""

from __future__ import annotations

from collections.abc import Sequence

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean F-measure of each ROUGE type (with stemming, as the ROUGE-1.5.5 script's common setting)."""
    from rouge_score.rouge_scorer import RougeScorer

    _check(predictions, references)
    scorer = RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        for key, score in scorer.score(ref, pred).items():
            totals[key] += score.fmeasure
    return {key: value / len(references) for key, value in totals.items()}


def bertscore(
    predictions: Sequence[str], references: Sequence[str], encoder: str = "minilm", num_layers: int | None = None
) -> dict[str, float]:
    """Mean BERTScore precision, recall and F1 with a local encoder (alias or folder)."""
    from bert_score import BERTScorer
    from transformers import AutoConfig

    from fintune.models.resolve import resolve_model

    _check(predictions, references)
    folder = str(resolve_model(encoder))
    layers = num_layers or AutoConfig.from_pretrained(folder).num_hidden_layers
    scorer = BERTScorer(model_type=folder, num_layers=layers, lang="en", rescale_with_baseline=False)
    precision, recall, f1 = scorer.score(list(predictions), list(references), batch_size=16)
    return {
        "bertscore_precision": float(precision.mean()),
        "bertscore_recall": float(recall.mean()),
        "bertscore_f1": float(f1.mean()),
    }


def summarization_metrics(
    predictions: Sequence[str], references: Sequence[str], encoder: str | None = "minilm"
) -> dict[str, float]:
    metrics = rouge_scores(predictions, references)
    if encoder:
        metrics.update(bertscore(predictions, references, encoder))
    return metrics


def _check(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references) or not references:
        raise ValueError(f"need equal, non-empty predictions and references ({len(predictions)}, {len(references)})")
