"""What fintune adds to TRL's SFTTrainer for speed and for DoRA's magnitude learning rate."""

from __future__ import annotations

import logging
from typing import Any

import torch
import trl.trainer.utils as trl_utils
from trl import SFTTrainer

log = logging.getLogger(__name__)


def score_answer_positions_only() -> bool:
    """Make TRL's fused LM head project only the positions that have a label, on every device.

    TRL scores only labelled positions on Triton devices, and every position elsewhere (to keep tile
    shapes fixed for compilers such as Neuron's). On CPU and in eager mode a varying shape costs nothing,
    while the 49k-token vocabulary projection of every prompt token is a fifth of SmolLM2's step, so
    with answer-only labels this skips it for the prompt. Same loss; checked in the unit tests.
    """
    if not hasattr(trl_utils, "_use_triton"):
        log.warning("TRL no longer exposes _use_triton; the LM head scores every position")
        return False
    trl_utils._use_triton = lambda device: True
    return True


class FastSFTTrainer(SFTTrainer):
    def __init__(self, *args: Any, dora_magnitude_lr: float | None = None, **kwargs: Any) -> None:
        self.dora_magnitude_lr = dora_magnitude_lr
        score_answer_positions_only()
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """DoRA's magnitude vectors get their own learning rate when the run asks for one."""
        if self.dora_magnitude_lr is None or self.optimizer is not None:
            return super().create_optimizer(model)
        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        magnitude = [p for n, p in params if "lora_magnitude_vector" in n]
        others = [p for n, p in params if "lora_magnitude_vector" not in n]
        if not magnitude:
            raise ValueError("dora_magnitude_lr is set but the model has no DoRA magnitude vectors")
        groups = [
            {"params": others, "lr": self.args.learning_rate, "weight_decay": self.args.weight_decay},
            {"params": magnitude, "lr": self.dora_magnitude_lr, "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=self.args.learning_rate)
        return self.optimizer
