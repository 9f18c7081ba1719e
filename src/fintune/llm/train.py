"""LoRA-family fine-tuning of an instruction LLM: the recipe around TRL's SFTTrainer and PEFT.

fintune prepares the data (one prompt renderer, answer-only labels with the end-of-turn token kept,
prompts truncated in the middle, never the answer), picks the method and precision, and writes the
adapter folder atomically. TRL trains.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase, TrainerCallback
from trl import SFTConfig, SFTTrainer

from fintune.artifacts import atomic_dir, last_checkpoint, work_dir
from fintune.config.saved import write_run
from fintune.config.schema import LLMRunConfig
from fintune.data.tasks import get_task
from fintune.errors import OutputExistsError, UsageError
from fintune.llm import fast
from fintune.llm.data import ExampleSet, sample_examples, training_sets
from fintune.llm.encode import encode_example
from fintune.llm.loss import WEIGHT_COLUMN, WeightedLossSFTTrainer
from fintune.llm.methods import check_method_device, keep_4bit_layers_trainable, lora_config, quantization_config
from fintune.llm.mixing import mix
from fintune.models.device import pick_device, pick_dtype
from fintune.models.loading import LOAD_LOCK
from fintune.models.resolve import resolve_model
from fintune.progress import progress_on_stderr

log = logging.getLogger(__name__)

DEBUG_EXAMPLES, DEBUG_STEPS, DEBUG_EVAL = 64, 8, 16


@dataclass
class LLMTrainData:
    train: list[tuple[str, Any]]  # (task, Example)
    eval: dict[str, list[Any]]  # task -> validation examples
    sets: dict[str, ExampleSet]
    notes: list[str] = field(default_factory=list)


@dataclass
class LLMTrainResult:
    output: Path
    train_seconds: float
    examples: int
    tokens: int
    tokens_per_s: float
    steps: int
    processes: int
    history: list[dict[str, float]]
    notes: list[str] = field(default_factory=list)


def load_train_data(cfg: LLMRunConfig, skip_invalid: bool = False) -> LLMTrainData:
    """Training examples mixed across the run's tasks, and a validation set per task."""
    weights = cfg.task_weights
    selected = training_sets(cfg, skip_invalid)
    sets, evals, notes = selected.train, selected.validation, selected.notes
    per_task = {name: s.examples for name, s in sets.items()}
    if cfg.debug:
        per_task = {name: ex[:DEBUG_EXAMPLES] for name, ex in per_task.items()}
    available = sum(len(examples) for examples in per_task.values())
    total = min(cfg.max_train_examples, available) if cfg.max_train_examples else None
    train = mix(per_task, cfg.mixing, weights or None, cfg.mixing_temperature, cfg.seed, total)
    limit = DEBUG_EVAL if cfg.debug else cfg.eval_limit
    evals = {name: sample_examples(ex, limit, cfg.seed) for name, ex in evals.items()}
    return LLMTrainData(train, evals, sets, notes)


def encode_all(
    tokenizer: PreTrainedTokenizerBase, examples: list[Any], cfg: LLMRunConfig, weights: list[float] | None = None
) -> tuple[Dataset, int]:
    """Tokenised examples for TRL (input_ids + completion_mask, and each example's loss weight when given)
    and how many prompts were truncated."""
    encoded = [encode_example(tokenizer, e, cfg.system_prompt, cfg.max_seq_length) for e in examples]
    rows: dict[str, list[Any]] = {
        "input_ids": [e.input_ids for e in encoded],
        "completion_mask": [e.completion_mask for e in encoded],
    }
    if weights is not None:
        rows[WEIGHT_COLUMN] = weights
    return Dataset.from_dict(rows), sum(e.truncated for e in encoded)


def weighted_loss(cfg: LLMRunConfig) -> bool:
    """The run needs fintune's loss (per-example normalisation or task weights), not TRL's token mean."""
    return cfg.resolved_loss_normalization == "example" or bool(cfg.task_loss_weights)


def load_base(cfg: LLMRunConfig, device: str) -> tuple[Any, PreTrainedTokenizerBase, torch.dtype]:
    folder = str(resolve_model(cfg.base_model))
    dtype = pick_dtype(device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    quant = quantization_config(cfg, dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device if device != "cuda" else 0}
    with LOAD_LOCK:
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if quant is None:
        model = model.to(device)  # type: ignore[arg-type]  # transformers types its wrapped .to() with an explicit self
    else:
        keep_4bit_layers_trainable(model)  # validation passes would otherwise repack them on bf16 CPUs
    return model, tokenizer, dtype


def task_recipe(cfg: LLMRunConfig) -> LLMRunConfig:
    """`cfg` with its task's own training defaults (`FinancialTask.recipe`) for the settings the run left
    unset; a run that sets num_epochs keeps its epochs. One-task runs only: a mixture has one budget."""
    if not cfg.task or cfg.tasks:
        return cfg
    explicit = cfg.model_fields_set
    update = {
        key: value
        for key, value in get_task(cfg.task).recipe
        if key not in explicit and not (key == "max_steps" and "num_epochs" in explicit)
    }
    if update:
        log.info("task %s's recipe: %s", cfg.task, ", ".join(f"{k} {v}" for k, v in update.items()))
    return cfg.model_copy(update=update) if update else cfg


def train_llm(
    cfg: LLMRunConfig,
    output: str | Path,
    *,
    use_gpu: bool | None = None,
    overwrite: bool = False,
    resume: bool = True,
    skip_invalid: bool = False,
    callbacks: list[TrainerCallback] | None = None,
) -> LLMTrainResult:
    if cfg.head != "generate":
        raise UsageError(f"head '{cfg.head}' trains with fintune.llm.heads.train_head (`fintune llm train` picks it)")
    cfg = task_recipe(cfg)
    output = Path(output)
    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output} already exists; choose another output or pass --overwrite")
    device = pick_device(use_gpu)
    check_method_device(cfg, device)
    data = load_train_data(cfg, skip_invalid)  # before the model: bad data fails in seconds
    model, tokenizer, dtype = load_base(cfg, device)
    loss_weights = cfg.task_loss_weights or {}
    weights = [loss_weights.get(task, 1.0) for task, _ in data.train] if weighted_loss(cfg) else None
    train_ds, truncated = encode_all(tokenizer, [e for _, e in data.train], cfg, weights)
    eval_ds = {name: encode_all(tokenizer, ex, cfg)[0] for name, ex in data.eval.items() if ex and cfg.eval_each_epoch}
    notes = list(data.notes)
    if truncated:
        notes.append(
            f"{truncated} of {len(train_ds)} prompts truncated in the middle to fit max_seq_length {cfg.max_seq_length}"
        )
        log.warning(notes[-1])
    peft_config = lora_config(cfg, model)
    work = work_dir(output)
    args = _sft_args(cfg, work, device, dtype, has_eval=bool(eval_ds))
    trainer_class, extra = (
        (WeightedLossSFTTrainer, {"loss_normalization": cfg.resolved_loss_normalization})
        if weights is not None
        else (fast.FastSFTTrainer, {})
    )
    trainer = trainer_class(
        **extra,
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds or None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[EpochLogCallback(), *(callbacks or [])],
        dora_magnitude_lr=cfg.dora_magnitude_lr,
    )
    progress_on_stderr(trainer)
    if not resume:
        shutil.rmtree(work, ignore_errors=True)
    checkpoint = last_checkpoint(work)
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - start
    bundle = task_bundle(cfg, work) if trainer.is_world_process_zero() else {}
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    result = LLMTrainResult(
        output=output,
        train_seconds=seconds,
        examples=len(train_ds),
        tokens=tokens,
        tokens_per_s=tokens / seconds,
        steps=trainer.state.global_step,
        processes=trainer.accelerator.num_processes,
        history=trainer.state.log_history,
        notes=notes,
    )
    if trainer.is_world_process_zero():
        _save(trainer, tokenizer, cfg, data, result, bundle)
        shutil.rmtree(work, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return result


def task_bundle(cfg: LLMRunConfig, work: Path) -> dict[str, Path]:
    """Folders a task's adapter carries besides its weights: rag_10k's answerability gate (a reranker,
    trained after the adapter on the same split; see fintune.rag.task)."""
    if cfg.task != "rag_10k" or not cfg.answerability_gate:
        return {}
    from fintune.data.tasks import get_task
    from fintune.rag.task import GATE, train_gate

    folder = Path(cfg.dataset_path) if cfg.dataset_path else get_task("rag_10k").path("train")
    return {GATE: train_gate(folder, "train", work, DEBUG_STEPS if cfg.debug else -1)}


def trainer_args(cfg: LLMRunConfig, work: Path, device: str, dtype: torch.dtype, has_eval: bool) -> dict[str, Any]:
    """The Trainer arguments every LLM recipe shares (generation with TRL, heads with the plain Trainer)."""
    return {
        "output_dir": str(work),
        "per_device_train_batch_size": cfg.batch_size,
        "per_device_eval_batch_size": max(cfg.batch_size, 16),
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.num_epochs,
        "max_steps": DEBUG_STEPS if cfg.debug else (cfg.max_steps or -1),
        "lr_scheduler_type": cfg.scheduler,
        "warmup_steps": cfg.warmup_ratio,  # a float below 1 is a fraction of the steps
        "weight_decay": cfg.weight_decay,
        "logging_steps": cfg.logging_steps,
        "eval_strategy": "epoch" if has_eval else "no",
        "report_to": list(cfg.report_to) or "none",
        "seed": cfg.seed,
        "bf16": dtype == torch.bfloat16,
        "fp16": dtype == torch.float16,
        "use_cpu": device == "cpu",
        "dataloader_num_workers": 0,
        "disable_tqdm": False,
    }


def _sft_args(cfg: LLMRunConfig, work: Path, device: str, dtype: torch.dtype, has_eval: bool) -> SFTConfig:
    return SFTConfig(
        **trainer_args(cfg, work, device, dtype, has_eval),
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=1,
        gradient_checkpointing=False,  # memory is not the limit here; recomputation would cost a third more
        completion_only_loss=True,
        max_length=None,  # encode_example already fits each example (truncating the prompt, not the answer)
        train_sampling_strategy="group_by_length",  # little padding without packing
        padding_free=cfg.padding_free,
        include_num_input_tokens_seen="non_padding",
        ddp_find_unused_parameters=False,
        remove_unused_columns=False,
    )


class EpochLogCallback(TrainerCallback):
    """One console line per epoch with the losses, token accuracy and entropy TRL logs."""

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        train = [h for h in state.log_history if "loss" in h]
        last = train[-1] if train else {}
        parts = [f"epoch {state.epoch:.2f}", f"train loss {last.get('loss', float('nan')):.4f}"]
        parts += [
            f"{k.removeprefix('eval_')} {v:.4f}"
            for k, v in metrics.items()
            if k.endswith(("loss", "accuracy", "entropy"))
        ]
        log.info(" | ".join(parts))


def _save(
    trainer: SFTTrainer,
    tokenizer: PreTrainedTokenizerBase,
    cfg: LLMRunConfig,
    data: LLMTrainData,
    result: LLMTrainResult,
    bundle: dict[str, Path],
) -> None:
    if trainer.model is None:
        raise RuntimeError("the trainer has no model to save (fintune always builds it with one)")
    with atomic_dir(result.output, overwrite=True) as tmp:
        # the PEFT-wrapped model; Trainer types it PreTrainedModel | nn.Module, and on nn.Module mypy resolves
        # save_pretrained through __getattr__ (a Tensor or Module)
        trainer.model.save_pretrained(tmp)  # type: ignore[operator]
        tokenizer.save_pretrained(tmp)
        for name, folder in bundle.items():
            shutil.copytree(folder, tmp / name)
        write_run(tmp, cfg)
        metrics = {
            "train_seconds": result.train_seconds,
            "examples": result.examples,
            "tokens": result.tokens,
            "tokens_per_s": result.tokens_per_s,
            "steps": result.steps,
            "processes": result.processes,
            "tasks": {
                name: {"records": s.records, "examples": len(s.examples), "source": s.source}
                for name, s in data.sets.items()
            },
            "notes": result.notes,
            "history": result.history,
        }
        (tmp / "fintune_metrics.json").write_text(json.dumps(metrics, indent=2))
