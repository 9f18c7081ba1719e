"""What a client (and the server) does with the LLM recipe: one seeded PEFT model, its adapter as named
arrays, and a round of local training with TRL on the client's own examples (FedProx optional)."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from datasets import Dataset
from peft import PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PrinterCallback
from trl import SFTConfig

from fintune.config.schema import LLMRunConfig
from fintune.federated.aggregation import Arrays, is_lora_a
from fintune.llm.encode import encode_prompt
from fintune.llm.evaluate import MAX_NEW_TOKENS, SCORERS
from fintune.llm.fast import FastSFTTrainer
from fintune.llm.generate import generate_batched
from fintune.llm.methods import lora_config
from fintune.llm.prompts import Example
from fintune.llm.train import load_base
from fintune.models.device import pick_device

log = logging.getLogger(__name__)


@dataclass
class AdapterModel:
    model: PeftModel
    tokenizer: PreTrainedTokenizerBase
    dtype: torch.dtype
    device: str
    init: Arrays  # the seeded initial adapter (what a client starts from before any round)


# One model per process and recipe: a simulation worker serves many rounds (and clients), so the base
# loads once; every round overwrites all adapter arrays, so nothing leaks from one client to another.
_MODELS: dict[str, AdapterModel] = {}


def adapter_model(llm: LLMRunConfig) -> AdapterModel:
    """The base model with fresh LoRA layers drawn from `llm.seed`: the same A on every client and the server."""
    key = llm.model_dump_json(include={"base_model", "lora_r", "lora_alpha", "target_modules", "quant_bits"})
    key += f"|{llm.resolved_method}|{llm.lora_skip_layers}|{llm.seed}"
    if key not in _MODELS:
        device = pick_device()
        base, tokenizer, dtype = load_base(llm, device)
        torch.manual_seed(llm.seed)  # PEFT draws A (Kaiming) from torch's global generator
        model = get_peft_model(base, lora_config(llm, base))
        _MODELS[key] = AdapterModel(model, tokenizer, dtype, device, get_arrays(model))
    return _MODELS[key]


def score_examples(am: AdapterModel, llm: LLMRunConfig, examples: list[Example], family: str) -> dict[str, float]:
    """Task metrics by generation, as `fintune llm eval` scores them (same prompts, same scorers)."""
    # llm.evaluate's pieces without evaluate_examples' latency probe (five single-prompt generations per
    # task), which would cost more than the scoring itself every round on a small CPU.
    am.model.eval()
    budget = llm.max_seq_length - MAX_NEW_TOKENS[family]
    prompts = [encode_prompt(am.tokenizer, e, llm.system_prompt, budget)[0] for e in examples]
    model = cast(PreTrainedModel, am.model)  # a PeftModel forwards to the model
    gen = generate_batched(model, am.tokenizer, prompts, MAX_NEW_TOKENS[family], 16, False)
    metrics = SCORERS[family](gen.answers, [e.target for e in examples], examples)
    return {"examples": float(len(examples)), **{k: float(v) for k, v in metrics.items()}}


def get_arrays(model: PeftModel) -> Arrays:
    """The adapter's arrays by PEFT's saved names, as float32 (numpy has no bfloat16)."""
    return {name: t.detach().float().cpu().numpy() for name, t in get_peft_model_state_dict(model).items()}


def set_arrays(model: PeftModel, arrays: Arrays) -> None:
    """Load named adapter arrays; every name must be one of the model's (PEFT would only warn)."""
    known = set(get_peft_model_state_dict(model))
    unknown = sorted(set(arrays) - known)
    if unknown:
        raise ValueError(f"{len(unknown)} arrays are not this adapter's, e.g. '{unknown[0]}'")
    set_peft_model_state_dict(model, {name: torch.from_numpy(np.asarray(a)) for name, a in arrays.items()})


def freeze_a(model: PeftModel, frozen: bool) -> None:
    """FFA-LoRA trains only B; A stays at the shared initialisation."""
    for name, param in model.named_parameters():
        if "lora_" in name:
            param.requires_grad = not (frozen and is_lora_a(name.replace(".default", "")))


class ProximalSFTTrainer(FastSFTTrainer):
    """FedProx: the local loss plus (mu/2)·‖w − w_global‖² over the trained adapter weights."""

    def __init__(self, *args: Any, proximal_mu: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proximal_mu = proximal_mu
        trainable = self.model.named_parameters() if self.model is not None else []
        self.anchor = {n: p.detach().clone() for n, p in trainable if p.requires_grad} if proximal_mu else {}

    def compute_loss(
        self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if not self.proximal_mu:
            return out
        loss = out[0] if return_outputs else out
        params = dict(model.named_parameters())
        prox = sum(((params[n] - w) ** 2).sum() for n, w in self.anchor.items())
        loss = loss + 0.5 * self.proximal_mu * prox
        return (loss, out[1]) if return_outputs else loss


def round_slice(dataset: Dataset, server_round: int, size: int, seed: int) -> Dataset:
    """The next `size` examples of the client's data for this round, wrapping around: rounds see new data.

    Slices follow one seeded shuffle of the file, not its order: shared files are often sorted (FPB's
    first 192 training records hold one negative, TFNS's none neutral), and a round on a sorted slice
    learns one label. `train_llm` (local-only, centralised) samples at random the same way.
    """
    order = np.random.default_rng(seed).permutation(len(dataset))
    start = (server_round - 1) * size
    return dataset.select([int(order[(start + i) % len(dataset)]) for i in range(size)])


@dataclass
class RoundResult:
    loss: float
    examples: int
    steps: int
    seconds: float


def train_round(
    am: AdapterModel,
    llm: LLMRunConfig,
    dataset: Dataset,
    server_round: int,
    local_steps: int,
    proximal_mu: float = 0.0,
) -> RoundResult:
    """`local_steps` optimizer steps of the recipe on this round's slice of the client's examples."""
    size = local_steps * llm.batch_size * llm.gradient_accumulation_steps
    data = round_slice(dataset, server_round, size, llm.seed)
    with tempfile.TemporaryDirectory(prefix="fintune-fed-") as work:
        trainer = ProximalSFTTrainer(
            model=am.model,
            args=_round_args(llm, work, am, local_steps, server_round),
            train_dataset=data,
            processing_class=am.tokenizer,
            proximal_mu=proximal_mu,
        )
        # Transformers prints each log dict to stdout when progress bars are off: stdout carries only data,
        # and the round's loss is logged by the client.
        trainer.remove_callback(PrinterCallback)
        start = time.perf_counter()
        output = trainer.train()
        seconds = time.perf_counter() - start
    am.model.eval()
    return RoundResult(float(output.training_loss), len(data), trainer.state.global_step, seconds)


def _round_args(llm: LLMRunConfig, work: str, am: AdapterModel, steps: int, server_round: int) -> SFTConfig:
    # The recipe's settings (as llm.train._sft_args) without checkpoints or validation: a round is short,
    # and the state between rounds lives in Flower's context, not in a Trainer checkpoint.
    return SFTConfig(
        output_dir=work,
        per_device_train_batch_size=llm.batch_size,
        gradient_accumulation_steps=llm.gradient_accumulation_steps,
        learning_rate=llm.learning_rate,
        max_steps=steps,
        lr_scheduler_type="constant",
        weight_decay=llm.weight_decay,
        logging_steps=steps,
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        seed=llm.seed + server_round,  # another order each round
        bf16=am.dtype == torch.bfloat16,
        fp16=am.dtype == torch.float16,
        use_cpu=am.device == "cpu",
        gradient_checkpointing=False,
        completion_only_loss=True,
        max_length=None,
        train_sampling_strategy="group_by_length",
        dataloader_num_workers=0,
        disable_tqdm=True,
        remove_unused_columns=False,
    )
