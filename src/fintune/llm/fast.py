"""What fintune adds to TRL's SFTTrainer for speed and for DoRA's magnitude learning rate."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
import trl.trainer.utils as trl_utils
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import SFTTrainer

from fintune.errors import UsageError

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


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """transformers' length-grouped order, drawn from `seed + epoch` instead of the global random state.

    The stock sampler draws each epoch from the global generator, which a checkpoint restores only as it
    was at the save: a run resumed mid-epoch after the first replays that epoch in another order."""

    def __init__(self, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # accelerate's DataLoaderShard calls it before each epoch
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


class FastSFTTrainer(SFTTrainer):
    def __init__(self, *args: Any, dora_magnitude_lr: float | None = None, **kwargs: Any) -> None:
        self.dora_magnitude_lr = dora_magnitude_lr
        score_answer_positions_only()
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler | None:
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is not LengthGroupedSampler:
            return sampler
        return EpochSeededLengthGroupedSampler(
            sampler.batch_size, lengths=sampler.lengths, seed=self.args.data_seed or self.args.seed
        )

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """DoRA's magnitude vectors get their own learning rate when the run asks for one."""
        if self.dora_magnitude_lr is None or self.optimizer is not None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model  # as Trainer.create_optimizer (FSDP passes the wrapped one)
        if opt_model is None:
            raise RuntimeError("FastSFTTrainer needs a model (fintune never builds it from a model_init)")
        params = [(n, p) for n, p in opt_model.named_parameters() if p.requires_grad]
        magnitude = [p for n, p in params if "lora_magnitude_vector" in n]
        others = [p for n, p in params if "lora_magnitude_vector" not in n]
        if not magnitude:
            raise UsageError("dora_magnitude_lr is set but the model has no DoRA magnitude vectors")
        groups = [
            {"params": others, "lr": self.args.learning_rate, "weight_decay": self.args.weight_decay},
            {"params": magnitude, "lr": self.dora_magnitude_lr, "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=self.args.learning_rate)
        return self.optimizer
