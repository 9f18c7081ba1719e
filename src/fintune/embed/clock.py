"""Examples trained on and seconds spent training over a whole run, across a resume.

The Trainer's `train_runtime` covers only the last session of a resumed run, and a count from the
config assumes every example was seen. The clock counts the examples of each batch that reached a
training step and stores its totals in every checkpoint, so a resumed run adds to them. Work done
after the last checkpoint of a killed session is neither counted nor timed: it is done again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformerTrainer
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from fintune.progress import progress_on_stderr

CLOCK_FILE = "fintune_clock.json"


class TrainingClock(TrainerCallback):
    def __init__(self) -> None:
        self.examples = 0
        self.seconds_before = 0.0  # stored in the checkpoint this run resumed from
        self.resumed_from_step: int | None = None
        self._started: float | None = None
        self._ended: float | None = None

    @property
    def seconds(self) -> float:
        if self._started is None:
            return self.seconds_before
        return self.seconds_before + (self._ended or time.perf_counter()) - self._started

    def count(self, examples: int) -> None:
        self.examples += examples

    def resume_from(self, checkpoint: Path) -> bool:
        """Continue from the totals stored in `checkpoint`; False when it holds none (then the totals
        cover only the steps after it)."""
        self.resumed_from_step = int(checkpoint.name.rsplit("-", 1)[-1])
        path = checkpoint / CLOCK_FILE
        if not path.is_file():
            return False
        saved = json.loads(path.read_text())
        self.examples, self.seconds_before = int(saved["examples"]), float(saved["seconds"])
        return True

    def on_train_begin(self, args, state, control, **kwargs):
        self._started, self._ended = time.perf_counter(), None

    def on_train_end(self, args, state, control, **kwargs):
        self._ended = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            totals = {"examples": self.examples, "seconds": self.seconds, "step": state.global_step}
            (folder / CLOCK_FILE).write_text(json.dumps(totals))


class ClockedTrainer(SentenceTransformerTrainer):
    """sentence-transformers' Trainer that counts every training batch on its `clock`."""

    def __init__(self, *, callbacks: list[TrainerCallback] | None = None, **kwargs: Any) -> None:
        """Keyword arguments only: a positional one could fill the Trainer's `callbacks` slot as well."""
        self.clock = TrainingClock()
        # First in line: a later callback that ends the run in on_save (a kill) cannot skip its record.
        super().__init__(callbacks=[self.clock, *(callbacks or [])], **kwargs)
        progress_on_stderr(self)

    def training_step(
        self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        # Every process trains a batch of the same size (accelerate evens out the last one).
        self.clock.count(batch_size(inputs) * self.accelerator.num_processes)
        return super().training_step(model, inputs, num_items_in_batch)


def batch_size(inputs: dict[str, Any]) -> int:
    """Examples in a collated sentence-transformers batch (each text column has `<column>_input_ids`)."""
    return next(len(v) for k, v in inputs.items() if k.endswith("input_ids") and isinstance(v, torch.Tensor))
