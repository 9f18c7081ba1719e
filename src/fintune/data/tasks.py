"""The financial task registry: each task knows its files, schema, label set and metric family.

Training, evaluation and inference all ask the task, so `--task fpb` means the same data, labels
and scoring everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fintune.data.schema import Field, field
from fintune.errors import UsageError
from fintune.paths import data_root

Family = Literal["classification", "qa", "generation", "numeric", "regression", "retrieval"]

# A next-day return beyond these (percent) is a units mistake (a fraction, basis points), not a market move.
RETURN_PCT_BOUNDS = (-100.0, 100.0)
SENTIMENT_LABELS = ("negative", "neutral", "positive")
TFNS_TO_SENTIMENT = {"bearish": "negative", "bullish": "positive", "neutral": "neutral"}
# FinLoRA's thresholds for FiQA scores: below -0.1 negative, below 0.1 neutral, else positive.
FIQA_NEGATIVE_BELOW, FIQA_NEUTRAL_BELOW = -0.1, 0.1

# A sentiment record mapped from its source (as_sentiment_record): the `sentiment` and `fiqa_sa` tasks' fields.
SENTIMENT_FIELDS = (
    field("id", kind="any", required=False),
    field("text"),
    field("label", kind="label"),
    field("source", kind="any", required=False),
)

HEADLINE_FLAGS = (
    "price_direction_up",
    "price_direction_constant",
    "price_direction_down",
    "asset_comparison",
    "past_information",
    "future_information",
)


@dataclass(frozen=True)
class FinancialTask:
    name: str
    description: str
    family: Family
    folder: str  # relative to the data root
    splits: tuple[str, ...]
    fields: tuple[Field, ...]
    layout: Literal["jsonl", "beir", "parts"] = "jsonl"  # parts: no files of its own, see `parts`
    label_field: str | None = None  # the field whose values must lie in `labels`
    labels: tuple[str, ...] | None = None
    source: str = ""
    target_field: str | None = None  # the number a regression task predicts
    parts: tuple[str, ...] = ()  # a task built from other tasks' data (mapped onto its fields), scored per part
    # LLM run settings this task trains with unless the run sets them (or, for max_steps, sets num_epochs):
    # a task whose examples cost ten times the default's needs its own budget (see fintune.llm.train.task_recipe)
    recipe: tuple[tuple[str, Any], ...] = ()

    def path(self, split: str = "train", root: Path | None = None) -> Path:
        """The task's file for `split` (or its BEIR folder)."""
        if split not in self.splits:
            raise UsageError(f"task '{self.name}' has no split '{split}' (has: {', '.join(self.splits)})")
        if self.layout == "parts":
            raise UsageError(f"task '{self.name}' has no files of its own: it reads {', '.join(self.parts)}")
        base = (root or data_root()) / self.folder
        return base if self.layout == "beir" else base / f"{split}.jsonl"


TASKS: dict[str, FinancialTask] = {
    t.name: t
    for t in (
        FinancialTask(
            "fpb",
            "Financial PhraseBank sentence sentiment",
            "classification",
            "sentiment/fpb",
            ("train", "dev"),
            (field("id", kind="any", required=False), field("text"), field("label", kind="label")),
            label_field="label",
            labels=("negative", "neutral", "positive"),
            source="Malo et al. 2014, CC BY-NC-SA 3.0",
        ),
        FinancialTask(
            "tfns",
            "Twitter Financial News sentiment",
            "classification",
            "sentiment/tfns",
            ("train", "dev"),
            (field("id", kind="any", required=False), field("text"), field("label", kind="label")),
            label_field="label",
            labels=("bearish", "bullish", "neutral"),
        ),
        FinancialTask(
            "headline",
            "Gold news headlines: yes/no questions from the headline flags",
            "classification",
            "headlines/gold",
            ("train", "dev"),
            (
                field("id", kind="any", required=False),
                field("headline"),
                *(field(flag, kind="int01") for flag in HEADLINE_FLAGS),
                field("price_sentiment", kind="label"),
            ),
            label_field="price_sentiment",
            labels=("positive", "negative", "neutral", "none"),
            source="Sinha and Khandait 2021",
        ),
        FinancialTask(
            "ner",
            "Entity types in loan agreements (from IO tags)",
            "classification",
            "ner/finner",
            ("train", "dev"),
            (field("id", kind="any", required=False), field("tokens", kind="texts"), field("ner_tags", kind="tags")),
            label_field="ner_tags",
            labels=("I-PER", "I-ORG", "I-LOC", "I-MISC", "O"),
            source="Alvarado et al. 2015",
        ),
        FinancialTask(
            "xbrl_term",
            "Explain an XBRL term in one sentence",
            "generation",
            "instructions/xbrl_term",
            ("train",),
            (field("context"), field("target")),
            source="FinLoRA, OpenMDW-1.0",
        ),
        FinancialTask(
            "formula",
            "Financial math: a numeric answer with 2 decimals",
            "numeric",
            "instructions/formula",
            ("train",),
            (field("context"), field("target")),
            source="FinLoRA, OpenMDW-1.0",
        ),
        FinancialTask(
            "financebench",
            "Questions over filings (FinanceBench)",
            "qa",
            "instructions/financebench",
            ("train",),
            (
                field("context"),
                field("target"),
                field("pages", kind="any", required=False),
                field("url", kind="any", required=False),
            ),
            source="FinLoRA, OpenMDW-1.0",
        ),
        FinancialTask(
            "ectsum",
            "Earnings-call transcript to bullet summary",
            "generation",
            "summarization/ectsum",
            ("train", "dev"),
            (field("id", kind="any", required=False), field("transcript"), field("summary")),
            source="ECTSum (EMNLP 2022), GPL-3.0",
        ),
        FinancialTask(
            "stocknet",
            "A ticker's tweets of one day -> the next trading day's return in percent",
            "regression",
            "regression/stocknet",
            ("train", "dev"),
            (
                field("id", kind="any", required=False),
                field("ticker"),
                field("date"),
                field("texts", kind="texts"),
                field("ret_next_pct", kind="number", bounds=RETURN_PCT_BOUNDS),
                field("ret_same_pct", kind="any", required=False),
            ),
            target_field="ret_next_pct",
            source="StockNet (Xu and Cohen, ACL 2018), MIT",
        ),
        FinancialTask(
            "fiqa_sa_score",
            "Sentiment score in [-1, 1] of a headline or post towards its target entity",
            "regression",
            "regression/fiqa_sa",
            ("train", "dev"),
            (
                field("id", kind="any", required=False),
                field("text"),
                field("target"),
                field("type", kind="any", required=False),
                field("score", kind="number", bounds=(-1.0, 1.0)),
            ),
            target_field="score",
            source="FiQA-2018 task 1",
        ),
        FinancialTask(
            "sentiment",
            "Three-class sentiment over fpb, tfns and FiQA (scores mapped to classes), scored per source",
            "classification",
            "sentiment",  # no files of its own: the parts' files (or a given file of these fields)
            ("train", "dev"),
            SENTIMENT_FIELDS,
            layout="parts",
            label_field="label",
            labels=SENTIMENT_LABELS,
            parts=("fpb", "tfns", "fiqa_sa_score"),
        ),
        FinancialTask(
            "fiqa_sa",
            "FiQA-SA as FinLoRA scores it: three classes from the scores, the sentiment task's FiQA prompt",
            "classification",
            "regression/fiqa_sa",  # read through its part: the scores' file, mapped to classes
            ("train", "dev"),
            SENTIMENT_FIELDS,
            layout="parts",
            label_field="label",
            labels=SENTIMENT_LABELS,
            parts=("fiqa_sa_score",),
        ),
        FinancialTask(
            "financial_qa_10k",
            "Retrieve the 10-K passage that answers an analyst's question",
            "retrieval",
            "retrieval/financial_qa_10k",
            ("train", "dev"),
            (),
            layout="beir",
        ),
        FinancialTask(
            "rag_10k",
            "Answer a 10-K question from retrieved passages, citing the passage id, or refuse",
            "qa",
            "retrieval/financial_qa_10k",
            ("train", "dev"),
            (),
            layout="beir",
            # four passages make prompts ~350 tokens: 36 s a step of 16 on 2 cores, so a budget in steps
            # rather than an epoch (310 steps, 3 hours); see README "RAG evaluation and the answering adapter"
            recipe=(("max_steps", 100), ("eval_limit", 32), ("save_steps", 20)),
        ),
    )
}


def score_to_sentiment(score: float) -> str:
    if score < FIQA_NEGATIVE_BELOW:
        return "negative"
    return "neutral" if score < FIQA_NEUTRAL_BELOW else "positive"


def as_sentiment_record(part: str, record: dict[str, Any]) -> dict[str, Any]:
    """A record of `part` (fpb, tfns, fiqa_sa_score) as a `sentiment` record {id, text, label, source}."""
    if part == "fpb":
        label = str(record["label"])
    elif part == "tfns":
        label = TFNS_TO_SENTIMENT[str(record["label"])]
    elif part == "fiqa_sa_score":
        label = score_to_sentiment(float(record["score"]))
    else:
        raise UsageError(f"task '{part}' is not a source of the sentiment tasks")
    return {"id": record.get("id"), "text": record["text"], "label": label, "source": part}


def get_task(name: str) -> FinancialTask:
    try:
        return TASKS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, TASKS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UsageError(f"unknown task '{name}'{hint}; known tasks: {', '.join(TASKS)}") from None
