"""Loss weighting for multi-task runs: per-example normalisation and per-task weights on the loss.

The standard causal-LM loss averages over answer tokens, so a 2-token label weighs a twentieth of a
summary: an adapter trained on labels and summaries together learns the labels' majority class.
With `example` normalisation each example's answer counts once (the mean of its token losses), and a
task weight scales its examples' share of the loss (not only of the sampling).

Gradient accumulation: Trainer passes `num_items_in_batch`, the answer tokens of every micro-batch of
one optimizer step, so each micro-batch's sum is divided by the window's total, not its own. `example`
normalisation needs the window's example count instead; the trainer counts it when it draws the
window's batches (`get_batch_samples`), so accumulated steps equal one large batch in both modes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
import torch.nn.functional as F

from fintune.llm.fast import FastSFTTrainer

Normalization = Literal["token", "example"]
WEIGHT_COLUMN = "example_weight"  # per-example loss weight carried in the dataset; popped before the model


def reduce_token_losses(
    token_loss: torch.Tensor,
    mask: torch.Tensor,
    example_ids: torch.Tensor,
    example_weights: torch.Tensor,
    normalization: Normalization,
    denominator: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """One loss from per-token losses.

    token_loss, mask, example_ids: (batch, seq) — the loss of each scored position, which positions have a
    label, and the example each position belongs to (its row, or its segment in a padding-free row).
    example_weights: (examples,). `token`: sum_i w_i * sum_t l_it / tokens. `example`: sum_i w_i * mean_t l_it
    / examples. `denominator` replaces tokens/examples (the whole gradient-accumulation window's count).
    """
    weights = example_weights.to(token_loss.dtype)
    ids = example_ids[mask]
    losses = token_loss[mask]
    sums = torch.zeros_like(weights).index_add(0, ids, losses)
    if normalization == "token":
        total = (weights * sums).sum()
        count = denominator if denominator is not None else mask.sum().clamp(min=1)
        return total / count
    counts = torch.zeros_like(weights).index_add(0, ids, torch.ones_like(losses))
    scored = counts > 0  # an example without answer tokens has no mean to add
    means = torch.where(scored, sums / counts.clamp(min=1), torch.zeros_like(sums))
    count = denominator if denominator is not None else scored.sum().clamp(min=1)
    return (weights * means).sum() / count


def weighted_causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    example_weights: torch.Tensor | None = None,
    normalization: Normalization = "token",
    denominator: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Next-token cross-entropy of (batch, seq, vocab) logits against (batch, seq) labels (-100: no loss).

    With unit weights, `token` is transformers' standard causal-LM loss and `example` the mean over the
    batch's examples of each example's mean token loss."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != -100
    token_loss = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.clamp(min=0).reshape(-1), reduction="none"
    ).view(shift_labels.shape)
    rows = torch.arange(labels.size(0), device=labels.device)[:, None].expand_as(shift_labels)
    weights = example_weights if example_weights is not None else torch.ones(labels.size(0), device=logits.device)
    return reduce_token_losses(token_loss * mask, mask, rows, weights, normalization, denominator)


def example_ids_for(batch: dict[str, torch.Tensor], shape: torch.Size) -> torch.Tensor:
    """The example of each scored (shifted) position: the row, or in a padding-free row the segment."""
    if "attention_mask" not in batch and "position_ids" in batch:  # padding-free: one row of packed examples
        starts = (batch["position_ids"] == 0).long()
        return (starts.cumsum(dim=-1) - 1)[:, 1:].expand(shape)  # position t+1 is scored at shifted index t
    return torch.arange(shape[0], device=batch["input_ids"].device)[:, None].expand(shape)


class WeightCollator:
    """Wraps TRL's collator (which keeps only the model's columns) to carry each example's loss weight."""

    def __init__(self, inner: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.inner = inner

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        weights = [float(e.pop(WEIGHT_COLUMN, 1.0)) for e in examples]
        batch = self.inner(examples)
        batch[WEIGHT_COLUMN] = torch.tensor(weights)
        return batch


class WeightedLossSFTTrainer(FastSFTTrainer):
    """FastSFTTrainer whose training loss is normalised per token or per example, with per-example weights.

    Validation loss stays TRL's token mean (unweighted), so it compares across runs with other settings."""

    def __init__(self, *args: Any, loss_normalization: Normalization = "token", **kwargs: Any) -> None:
        self.loss_normalization = loss_normalization
        self._window_examples: int | None = None
        super().__init__(*args, **kwargs)
        self.data_collator = WeightCollator(self.data_collator)

    def get_batch_samples(
        self, epoch_iterator: Iterator, num_batches: int, device: torch.device
    ) -> tuple[list, torch.Tensor | int | None]:
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        count = torch.tensor(sum(int(b[WEIGHT_COLUMN].numel()) for b in batches), device=device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()  # as Trainer counts tokens: over every rank
        self._window_examples = int(count) or None
        return batches, num_items

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        weights = inputs.pop(WEIGHT_COLUMN, None)
        if not model.training or weights is None or return_outputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        outputs = model(**inputs, use_cache=False, fused_lm_head=True)
        mask = outputs.label_mask
        ids = example_ids_for(inputs, mask.shape)
        windowed = num_items_in_batch is not None
        if self.loss_normalization == "token":
            denominator = num_items_in_batch if windowed else None
        else:
            denominator = self._window_examples if windowed else None
        loss = reduce_token_losses(-outputs.log_probs, mask, ids, weights, self.loss_normalization, denominator)
        if self.args.average_tokens_across_devices and windowed:  # as TRL: the count spans every rank, DDP averages
            loss = loss * self.accelerator.num_processes
        self._log_token_metrics(outputs, inputs)
        return loss

    def _log_token_metrics(self, outputs: Any, inputs: dict[str, Any]) -> None:
        """The entropy, token accuracy and token count TRL logs from its own loss path."""
        gather = self.accelerator.gather_for_metrics
        valid = gather(outputs.label_mask.sum()).sum()
        if outputs.entropy is not None:
            entropy = gather(outputs.entropy.detach().sum()).sum()
            self._metrics["train"]["entropy"].append((entropy / valid).item() if valid > 0 else 0.0)
        if outputs.is_top1 is not None:
            correct = gather(outputs.is_top1.sum()).sum()
            self._metrics["train"]["mean_token_accuracy"].append((correct / valid).item() if valid > 0 else 0.0)
        tokens = inputs["attention_mask"].sum() if "attention_mask" in inputs else inputs["position_ids"].size(1)
        self._total_train_tokens += int(gather(torch.as_tensor(tokens, device=valid.device)).sum().item())
        self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
