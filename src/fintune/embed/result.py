"""What an embedding training run returns and records: read by the trainer, the card and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the card reads this module; keep it free of torch
    from fintune.embed.evaluate import RetrievalResult


@dataclass
class EmbedTrainResult:
    output: Path
    train_seconds: float  # training time over the whole run, across a resume
    examples: int  # examples trained on (each epoch counts), across a resume
    pairs_per_s: float  # examples / train_seconds
    before: dict[str, float] | None = None
    after: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)
    steps: int = 0  # optimizer steps taken
    processes: int = 1  # data-parallel processes (2 under `accelerate launch --num_processes 2`)
    eval_metrics: dict[str, float] | None = None  # the training evaluator's last scores (sampled corpus)
    resumed_from_step: int | None = None  # the checkpoint this run continued from
    validation: str | None = None  # what before/after were measured on (grouped validation or a split)
    style_before: dict[str, float] | None = None  # the XBRL term -> explanation check (another style of text)
    style_after: dict[str, float] | None = None
    wise_alpha: float | None = None  # WiSE-FT: the saved weights are (1 - alpha) base + alpha tuned
    wise_scores: dict[float, float] | None = None  # validation NDCG@10 (sampled corpus) of each alpha tried
    # full results behind `before`/`after` (rankings for a comparison report); not saved
    before_result: RetrievalResult | None = field(default=None, repr=False)
    after_result: RetrievalResult | None = field(default=None, repr=False)
