"""Trainer progress on standard error: standard output carries only data."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

# A JSONL file to append one line per step and per log to, for a watcher such as the UI (unset: nothing written).
PROGRESS_FILE_ENV = "FINTUNE_PROGRESS_FILE"


def append_progress(state: Any, **fields: Any) -> None:
    """One machine-readable progress line in `$FINTUNE_PROGRESS_FILE`, when that is set (process zero only)."""
    path = os.environ.get(PROGRESS_FILE_ENV)
    if not path or not state.is_world_process_zero:
        return
    line = {"time": time.time(), "step": getattr(state, "global_step", 0), "max_steps": state.max_steps, **fields}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


class StderrProgressCallback(ProgressCallback):
    """transformers' progress bar, with its per-log metric lines on stderr.

    The stock callback writes those lines with `tqdm.write`, whose default file is stdout, so
    `fintune ... > out.json` would mix them into data."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in logs.items() if k != "total_flos"}
        tqdm.write(str(shown), file=sys.stderr)


class StderrPrinterCallback(PrinterCallback):
    """What the Trainer shows instead of a bar when tqdm is off (no terminal): its log lines, on stderr
    (the stock one prints them to stdout)."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            print({k: v for k, v in logs.items() if k != "total_flos"}, file=sys.stderr, flush=True)


class ProgressFileCallback(TrainerCallback):
    """Steps and logged numbers (loss, eval_loss, learning rate) as JSONL in `$FINTUNE_PROGRESS_FILE`,
    whether or not a progress bar is shown (without a tty the Trainer prints logs instead of a bar)."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        append_progress(state)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float) and k != "total_flos"}
        append_progress(state, logs=numbers)


def progress_on_stderr(trainer: Trainer) -> Trainer:
    """Swap the trainer's default progress callback (the bar, or the log printer without a terminal) for its
    stderr twin; with `$FINTUNE_PROGRESS_FILE` set, also record progress there."""
    callbacks: list[TrainerCallback] = trainer.callback_handler.callbacks
    if any(type(cb) is ProgressCallback for cb in callbacks):
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(StderrProgressCallback)
    if any(type(cb) is PrinterCallback for cb in callbacks):
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(StderrPrinterCallback)
    if os.environ.get(PROGRESS_FILE_ENV):
        trainer.add_callback(ProgressFileCallback)
    return trainer
