"""Trainer progress on standard error: standard output carries only data."""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ProgressCallback


class StderrProgressCallback(ProgressCallback):
    """transformers' progress bar, with its per-log metric lines on stderr.

    The stock callback writes those lines with `tqdm.write`, whose default file is stdout, so
    `fintune ... > out.json` would mix them into data."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in logs.items() if k != "total_flos"}
        tqdm.write(str(shown), file=sys.stderr)


def progress_on_stderr(trainer: Trainer) -> Trainer:
    """Swap the trainer's default progress callback for the stderr one (no-op when progress is off)."""
    callbacks: list[TrainerCallback] = trainer.callback_handler.callbacks
    if any(type(cb) is ProgressCallback for cb in callbacks):
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(StderrProgressCallback)
    return trainer
