"""Trainer callbacks a worker adds to every run: progress events, cooperative cancel, a step cap."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class TaskAborted(Exception):
    """Raised inside the training loop to stop it at once: nothing after it (saving) runs."""


class StepLimit(TrainerCallback):
    """Stop after `max_steps` optimizer steps through the Trainer's own `max_steps`, so its schedule and
    progress count agree (the embedding run config trains whole epochs and has no such key)."""

    def __init__(self, max_steps: int):
        self.max_steps = max_steps

    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        args.max_steps = self.max_steps


class SaveEvery(TrainerCallback):
    """A checkpoint every `steps` optimizer steps, on top of the recipe's own schedule (the embedding recipe
    saves every 200 steps, or at its evaluations): a task whose worker dies loses at most `steps` steps."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if state.global_step % self.steps == 0:
            control.should_save = True


class TaskCallback(TrainerCallback):
    """Reports progress and checks for an abort request after every optimizer step.

    On an abort the step's checkpoint is saved (the Trainer's own save, so a restart resumes from this
    step), then the callback raises from `on_save`. Raising rather than setting `should_training_stop`
    matters: a stopped Trainer returns normally and the recipe would then save a half-trained model; an
    exception leaves only the checkpoints beside the output, never the output itself."""

    def __init__(
        self,
        should_abort: Callable[[], bool],
        report: Callable[[dict[str, Any]], None],
        min_interval_s: float = 1.0,
    ):
        self.should_abort = should_abort
        self.report = report
        self.min_interval_s = min_interval_s
        self.aborting = False
        self._last = 0.0
        self._latest: dict[str, float] = {}

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if self.should_abort():
            raise TaskAborted("abort requested before the first step")
        self.report({"step": state.global_step, "total": state.max_steps})

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.min_interval_s or state.global_step >= state.max_steps:
            self._last = now
            self.report({"step": state.global_step, "total": state.max_steps, **self._latest})
        if self.should_abort():
            self.aborting = True
            control.should_save = True  # the Trainer saves this step's checkpoint, then calls on_save

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if self.aborting:
            raise TaskAborted(f"abort requested; checkpoint of step {state.global_step} saved")

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        numbers = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
        self._latest = {k: v for k, v in numbers.items() if "loss" in k or k.startswith("eval_")}
        if self._latest:
            self.report({"step": state.global_step, "total": state.max_steps, **self._latest})
