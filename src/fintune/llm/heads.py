"""LoRA plus a sequence-classification head: a label task classified, or a number regressed, in one pass.

Beside generation (the LLM writes the answer), PEFT's SEQ_CLS task type puts a linear head (`score`) on
the last token's hidden state; the head trains in full, the base through LoRA. The model reads the same
rendered prompt as generation does. A regression head predicts the standardised target (the head starts
near zero, and stocknet's returns and FiQA's scores differ in scale); the adapter folder records the
labels or the target's scale in `fintune_head.json`, and `head` in its run config, so `llm eval` takes
the matching path.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from fintune.artifacts import atomic_dir, work_dir
from fintune.config.saved import read_llm_run, write_run
from fintune.config.schema import LLMRunConfig
from fintune.data.tasks import get_task
from fintune.errors import InputNotFoundError, OutputExistsError, UsageError
from fintune.llm.encode import encode_prompt
from fintune.llm.evaluate import SCORERS, GenerationEval, score_by_source
from fintune.llm.methods import lora_config
from fintune.llm.prompts import Example
from fintune.llm.train import LLMTrainResult, load_train_data, task_recipe, trainer_args
from fintune.models.device import pick_device, pick_dtype
from fintune.models.resolve import resolve_model
from fintune.progress import progress_on_stderr

log = logging.getLogger(__name__)

HEAD_FILE = "fintune_head.json"
Head = Literal["classify", "regress"]


@dataclass(frozen=True)
class HeadSpec:
    """What the head outputs: one logit per label, or one standardised number (value * scale + shift)."""

    head: Head
    labels: tuple[str, ...] = ()
    shift: float = 0.0
    scale: float = 1.0
    # regress: the standardised output is calibrated as intercept + slope * output (see fit_calibration)
    intercept: float = 0.0
    slope: float = 1.0

    @property
    def num_labels(self) -> int:
        return len(self.labels) if self.head == "classify" else 1

    def target(self, example: Example) -> float | int:
        if self.head == "classify":
            return self.labels.index(example.target)
        return (float(example.target) - self.shift) / self.scale

    def answer(self, logits: torch.Tensor) -> str:
        """The head's output as the answer text the task's scorer reads."""
        if self.head == "classify":
            return self.labels[int(logits.argmax())]
        return f"{(self.intercept + self.slope * float(logits[0])) * self.scale + self.shift:.6g}"


def fit_calibration(outputs: list[float], targets: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope mapping the head's standardised outputs to the targets, slope
    clipped to [0, 1]. A head trained for a few epochs on a few hundred examples ranks held-out posts
    better than it scales them (fiqa_sa_score: Pearson 0.39 but MSE above the mean's); shrinking its
    spread to the correlation it shows on unseen examples is what least squares does. A slope above 1
    would widen on a small calibration set's noise, a negative one would invert it: the mean is safer."""
    mean_out, mean_target = statistics.fmean(outputs), statistics.fmean(targets)
    variance = statistics.fmean([(o - mean_out) ** 2 for o in outputs])
    covariance = statistics.fmean([(o - mean_out) * (t - mean_target) for o, t in zip(outputs, targets, strict=True)])
    slope = min(1.0, max(0.0, covariance / variance)) if variance > 0 else 0.0
    return mean_target - slope * mean_out, slope


def head_spec(head: Head, examples: list[Example]) -> HeadSpec:
    """The label set (in first-seen order of the examples' answer sets) or the target's mean and spread."""
    if head == "classify":
        labels = tuple(dict.fromkeys(label for e in examples for label in e.labels))
        if not labels:
            raise UsageError("head 'classify' needs a label task (fpb, tfns, headline, ner, sentiment)")
        return HeadSpec(head, labels)
    values = [float(e.target) for e in examples]
    return HeadSpec(head, shift=statistics.fmean(values), scale=statistics.pstdev(values) or 1.0)


def check_head_task(cfg: LLMRunConfig) -> None:
    name = next(iter(cfg.task_weights), None)  # the config allows a head only with one registry task
    family = get_task(name).family if name else "a data file"
    wanted = {"classify": "classification", "regress": "regression"}[cfg.head]
    if family != wanted:
        raise UsageError(f"head '{cfg.head}' needs a {wanted} task; '{name}' is {family}")


def write_head(folder: Path, spec: HeadSpec) -> None:
    body = {
        "head": spec.head,
        "labels": list(spec.labels),
        "shift": spec.shift,
        "scale": spec.scale,
        "intercept": spec.intercept,
        "slope": spec.slope,
    }
    (folder / HEAD_FILE).write_text(json.dumps(body, indent=2), encoding="utf-8")


def read_head(folder: str | Path) -> HeadSpec:
    path = Path(folder) / HEAD_FILE
    if not path.is_file():
        raise InputNotFoundError(f"{folder}: adapter has a head in its run config but no {HEAD_FILE}")
    raw = json.loads(path.read_text(encoding="utf-8"))
    calibration = float(raw.get("intercept", 0.0)), float(raw.get("slope", 1.0))  # older adapters: none
    return HeadSpec(raw["head"], tuple(raw["labels"]), float(raw["shift"]), float(raw["scale"]), *calibration)


def load_head_base(base_model: str, spec: HeadSpec, device: str) -> tuple[Any, PreTrainedTokenizerBase]:
    folder = str(resolve_model(base_model))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    problem = "single_label_classification" if spec.head == "classify" else "regression"
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=spec.num_labels, problem_type=problem, dtype=pick_dtype(device)
    )
    model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the last non-pad token of each row
    return model.to(device), tokenizer


def encode_for_head(
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    system_prompt: str | None,
    max_length: int,
    spec: HeadSpec | None,
) -> Dataset:
    """The prompts as generation renders them (cut in the middle to max_length), and the head's targets."""
    ids = [encode_prompt(tokenizer, e, system_prompt, max_length)[0] for e in examples]
    rows: dict[str, list[Any]] = {"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]}
    if spec is not None:
        rows["labels"] = [spec.target(e) for e in examples]
    return Dataset.from_dict(rows)


def _head_args(cfg: LLMRunConfig, work: Path, device: str, has_eval: bool) -> TrainingArguments:
    args = trainer_args(cfg, work, device, pick_dtype(device), has_eval)
    return TrainingArguments(**args, save_strategy="no")  # a head run is short; resuming is the generation recipe's


def train_head(
    cfg: LLMRunConfig,
    output: str | Path,
    *,
    use_gpu: bool | None = None,
    overwrite: bool = False,
    skip_invalid: bool = False,
    callbacks: list[TrainerCallback] | None = None,
) -> LLMTrainResult:
    """Train LoRA + head on one task and save the adapter folder."""
    from peft import get_peft_model

    cfg = task_recipe(cfg)
    output = Path(output)
    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output} already exists; choose another output or pass --overwrite")
    if cfg.head == "generate":
        raise UsageError("train_head trains a 'classify' or 'regress' head")
    check_head_task(cfg)
    data = load_train_data(cfg, skip_invalid)
    examples, held = calibration_split([e for _, e in data.train], cfg)
    spec = head_spec(cfg.head, examples)
    device = pick_device(use_gpu)
    model, tokenizer = load_head_base(cfg.base_model, spec, device)
    peft_cfg = lora_config(cfg, model)
    peft_cfg.task_type = "SEQ_CLS"  # PEFT then trains and saves the head (`score`) in full
    model = get_peft_model(model, peft_cfg)
    evals = [e for ex in data.eval.values() for e in ex] if cfg.eval_each_epoch else []
    work = work_dir(output)
    train_ds = encode_for_head(tokenizer, examples, cfg.system_prompt, cfg.max_seq_length, spec)
    trainer = Trainer(
        model=model,
        args=_head_args(cfg, work, device, has_eval=bool(evals)),
        train_dataset=train_ds,
        eval_dataset=encode_for_head(tokenizer, evals, cfg.system_prompt, cfg.max_seq_length, spec) if evals else None,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=callbacks,
    )
    progress_on_stderr(trainer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    if held:
        model.eval()
        outputs = [float(row[0]) for row in head_logits(model, tokenizer, held, cfg.system_prompt, cfg.max_seq_length)]
        intercept, slope = fit_calibration(outputs, [float(spec.target(e)) for e in held])
        spec = replace(spec, intercept=intercept, slope=slope)
        data.notes.append(
            f"calibrated on {len(held)} held-out training examples: output x {spec.slope:.3f} + {spec.intercept:.3f}"
        )
    tokens = sum(len(ids) for ids in train_ds["input_ids"]) * (trainer.state.epoch or 1.0)
    result = LLMTrainResult(
        output=output,
        train_seconds=seconds,
        examples=len(examples),
        tokens=int(tokens),
        tokens_per_s=tokens / seconds,
        steps=trainer.state.global_step,
        processes=trainer.accelerator.num_processes,
        history=trainer.state.log_history,
        notes=data.notes,
    )
    metrics = {
        "train_seconds": seconds,
        "examples": len(examples),
        "steps": result.steps,
        "head": cfg.head,
        "calibration": {"examples": len(held), "intercept": spec.intercept, "slope": spec.slope} if held else None,
        "notes": data.notes,
        "history": result.history,
    }
    with atomic_dir(output, overwrite=True) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(tmp)
        write_run(tmp, cfg)
        write_head(tmp, spec)
        (tmp / "fintune_metrics.json").write_text(json.dumps(metrics, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return result


def evaluate_head(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    spec: HeadSpec,
    examples: list[Example],
    family: str,
    system_prompt: str | None,
    max_length: int,
    batch_size: int = 16,
) -> GenerationEval:
    """Score a head adapter with its task's metrics (the same scorers as generation, on the head's answers)."""
    start = time.perf_counter()
    answers = predict_head(model, tokenizer, spec, examples, system_prompt, max_length, batch_size)
    elapsed = time.perf_counter() - start
    metrics = SCORERS[family](answers, [e.target for e in examples], examples)
    metrics.update(examples=len(examples), examples_per_s=len(examples) / elapsed)
    predictions = [
        {"id": i, "prompt": e.prompt, "answer": a, "gold": e.target}
        for i, (e, a) in enumerate(zip(examples, answers, strict=True))
    ]
    return GenerationEval(metrics, predictions, score_by_source(family, answers, examples))


def load_head_model(
    adapter: str | Path, device: str | None = None, base_model: str | None = None
) -> tuple[Any, PreTrainedTokenizerBase, HeadSpec]:
    """The base (the adapter's recorded one unless `base_model` names another copy of it) with the adapter's
    LoRA and head, its tokenizer and what the head outputs."""
    from peft import PeftModel

    run = read_llm_run(adapter)
    if run is None or run.head == "generate":
        raise UsageError(f"{adapter}: not a head adapter (its run config records no 'classify'/'regress' head)")
    spec = read_head(adapter)
    device = device or pick_device()
    base, _ = load_head_base(base_model or run.base_model, spec, device)
    tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    model = PeftModel.from_pretrained(base, str(adapter)).to(device)
    model.eval()
    return model, tokenizer, spec


@torch.no_grad()
def predict_head(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    spec: HeadSpec,
    examples: list[Example],
    system_prompt: str | None,
    max_length: int,
    batch_size: int = 16,
) -> list[str]:
    """The head's answer for each example, as text the task's scorer reads (a label, or a number)."""
    return [spec.answer(row) for row in head_logits(model, tokenizer, examples, system_prompt, max_length, batch_size)]


@torch.no_grad()
def head_logits(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    system_prompt: str | None,
    max_length: int,
    batch_size: int = 16,
) -> list[torch.Tensor]:
    """The head's raw output row for each example (logits, or the standardised number)."""
    data = encode_for_head(tokenizer, examples, system_prompt, max_length, None)
    collate = DataCollatorWithPadding(tokenizer)
    device = next(model.parameters()).device
    rows: list[torch.Tensor] = []
    for start in range(0, len(data), batch_size):
        batch = collate([data[i] for i in range(start, min(start + batch_size, len(data)))])
        rows += list(model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu())
    return rows


def calibration_split(examples: list[Example], cfg: LLMRunConfig) -> tuple[list[Example], list[Example]]:
    """(train, held out to calibrate): a seeded `head_calibration` share for a regress head, else none."""
    count = round(len(examples) * cfg.head_calibration) if cfg.head == "regress" else 0
    if count < 2 or len(examples) - count < 2:  # least squares needs two points, training some examples
        return examples, []
    order = list(range(len(examples)))
    random.Random(cfg.seed).shuffle(order)
    held = set(order[:count])
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]
