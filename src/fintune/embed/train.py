"""Fine-tune a sentence-transformers model from a run config: the recipe around the library's Trainer."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer import losses as st_losses
from transformers import EarlyStoppingCallback

from fintune.artifacts import atomic_dir, last_checkpoint, work_dir
from fintune.config.schema import EmbedRunConfig
from fintune.data.beir import BeirData, is_beir_folder, load_beir, splits_of
from fintune.embed.augment import augment_queries
from fintune.embed.card import write_card
from fintune.embed.evaluate import RetrievalResult, encode_corpus, evaluate_retrieval, ir_evaluator
from fintune.embed.examples import TrainingData, load_training_data, split_long_documents
from fintune.embed.freezing import freeze_layers
from fintune.embed.losses import WeightedLoss, build_loss, check_loss_fits
from fintune.embed.negatives import mine_hard_negatives, with_negatives
from fintune.embed.sampler import LengthBucketBatchSampler
from fintune.embed.towers import make_asymmetric, router_mapping, tower_param_groups
from fintune.models.device import pick_device, pick_dtype
from fintune.models.resolve import resolve_model

log = logging.getLogger(__name__)


@dataclass
class EmbedTrainResult:
    output: Path
    train_seconds: float
    examples: int
    pairs_per_s: float
    before: dict[str, float] | None = None
    after: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)
    steps: int = 0  # optimizer steps taken
    processes: int = 1  # data-parallel processes (2 under `accelerate launch --num_processes 2`)
    eval_metrics: dict[str, float] | None = None  # the training evaluator's last scores (sampled corpus)
    # full results behind `before`/`after` (rankings for a comparison report); not saved
    before_result: RetrievalResult | None = field(default=None, repr=False)
    after_result: RetrievalResult | None = field(default=None, repr=False)


def train_embedder(
    config: EmbedRunConfig,
    *,
    resume: bool = True,
    overwrite: bool = False,
    skip_invalid: bool = False,
    evaluate: bool = True,
    use_gpu: bool | None = None,
    callbacks: list[Any] | None = None,
) -> EmbedTrainResult:
    """Train, then save the model folder atomically with its card, run config and metrics.

    `evaluate` scores base and tuned model on the full eval split (before/after in the card);
    `callbacks` are extra transformers callbacks (the tuner reports to Optuna through one)."""
    if not config.output:
        raise ValueError("an output folder is needed (--output or output: in the run config)")
    if not config.data:
        raise ValueError("training data is needed (--data or data: in the run config)")
    output = Path(config.output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} already exists; choose another --output or pass --overwrite")
    torch.manual_seed(config.seed)
    device = pick_device(use_gpu)
    model = SentenceTransformer(str(resolve_model(config.model)), device=device)
    if config.max_seq_length:
        model.max_seq_length = config.max_seq_length
    notes: list[str] = []

    data = load_training_data(config.data, config.data_format, "train", skip_invalid, config.seed)
    if config.hard_negatives is None:
        config = config.model_copy(update={"hard_negatives": 1 if data.shape == "pairs" and data.corpus else 0})
    if data.skipped:
        notes.append(f"skipped {data.skipped} invalid training record(s)")
    if config.hard_negatives and data.shape != "pairs":
        raise ValueError(f"{config.data}: hard negatives are mined for (query, passage) pairs, not {data.shape} data")
    check_loss_fits(config.loss, "triplets" if config.hard_negatives else data.shape, str(config.data))
    if config.split_long_documents:
        split = split_long_documents(data, model.tokenizer, model.max_seq_length)
        notes.append(f"split {split} long text(s) into pieces of at most {model.max_seq_length} tokens")
    notes += _count_truncated(model, data.dataset)

    eval_data = _eval_split(config)
    before = None
    base_corpus = None
    if evaluate and eval_data is not None:
        log.info("scoring the base model on %s (%d queries)", eval_data.split, len(eval_data.queries))
        start = time.perf_counter()
        base_corpus = encode_corpus(model, eval_data)
        before = evaluate_retrieval(model, eval_data, corpus_embeddings=base_corpus)
        before.metrics["corpus_docs_per_s"] = len(eval_data.corpus) / (time.perf_counter() - start)

    if config.hard_negatives:
        data = _add_hard_negatives(model, data, config, eval_data, base_corpus, notes)
    if config.augment:
        data.dataset = _augmented(data.dataset, config.seed, notes)

    if config.asymmetric:
        model = make_asymmetric(model)
    trainable = freeze_layers(model, config.num_fixed_layers)
    log.info(
        "training %s on %d examples (%s), %d trainable parameters",
        config.model,
        len(data.dataset),
        data.shape,
        trainable,
    )
    # Under `accelerate launch` the process group starts with the Trainer, after the loss is built.
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    loss = build_loss(config.loss, model, config, distributed=distributed)
    train_dataset: Dataset | dict[str, Dataset] = data.dataset
    if config.domain_data:
        domain = load_training_data(config.domain_data, "simple", skip_invalid=skip_invalid)
        train_dataset = {"supervised": data.dataset, "domain": domain.dataset}
        loss = {
            "supervised": WeightedLoss(loss, 1.0 - config.domain_adaptation_weight),
            "domain": WeightedLoss(st_losses.MultipleNegativesRankingLoss(model), config.domain_adaptation_weight),
        }
        notes.append(f"domain adaptation on {len(domain.dataset)} texts, weight {config.domain_adaptation_weight}")

    args = _training_args(config, output, device, eval_data is not None)
    if config.asymmetric:
        args.router_mapping = router_mapping(data.dataset)
    callbacks = list(callbacks or [])
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=ir_evaluator(eval_data, seed=config.seed) if args.eval_strategy != "no" else None,
        callbacks=callbacks,
        optimizers=_optimizers(config, model),
    )
    checkpoint = last_checkpoint(work_dir(output)) if resume else None
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - start
    examples = int(len(data.dataset) * config.epochs)

    after = evaluate_retrieval(model, eval_data) if evaluate and eval_data is not None else None
    result = EmbedTrainResult(
        output,
        seconds,
        examples,
        examples / seconds,
        before and before.metrics,
        after and after.metrics,
        notes,
        before_result=before,
        after_result=after,
        steps=trainer.state.global_step,
        processes=trainer.args.world_size,
    )
    if trainer.evaluator is not None:
        result.eval_metrics = trainer.evaluate()
    if trainer.is_world_process_zero():
        _save(model, config, data, result)
        shutil.rmtree(work_dir(output), ignore_errors=True)
    return result


def _eval_split(config: EmbedRunConfig) -> BeirData | None:
    path = Path(config.data)
    if not is_beir_folder(path) or config.eval_split not in splits_of(path):
        return None
    return load_beir(path, config.eval_split, skip_invalid=True)


def _count_truncated(model: SentenceTransformer, dataset: Dataset) -> list[str]:
    limit = model.max_seq_length
    tokenizer = model.tokenizer
    columns = [c for c in dataset.column_names if c != "score"]
    texts = [t for c in columns for t in dataset[c]]
    lengths = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    over = sum(len(ids) > limit for ids in lengths)
    if not over:
        return []
    message = f"{over} of {len(texts)} training texts exceed {limit} tokens and are truncated"
    log.warning(message)
    return [message]


def _add_hard_negatives(
    model: SentenceTransformer,
    data: TrainingData,
    config: EmbedRunConfig,
    eval_data: BeirData | None,
    base_corpus: torch.Tensor | None,
    notes: list[str],
) -> TrainingData:
    corpus_texts = data.corpus or sorted(set(data.dataset["positive"]))
    if base_corpus is None or eval_data is None or len(corpus_texts) != base_corpus.shape[0]:
        base_corpus = model.encode_document(
            corpus_texts, batch_size=64, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=True
        )
    index = {text: i for i, text in enumerate(corpus_texts)}
    anchors = model.encode_query(
        data.dataset["anchor"], batch_size=64, convert_to_tensor=True, normalize_embeddings=True
    )
    positive_ids = [index[p] for p in data.dataset["positive"]]
    negatives = mine_hard_negatives(
        anchors, positive_ids, base_corpus, config.hard_negatives, config.hard_negative_margin
    )
    mined = with_negatives(data.dataset, negatives, corpus_texts)
    dropped = len(data.dataset) - len(mined)
    notes.append(
        f"mined {config.hard_negatives} hard negative(s) per query with the base model "
        f"(margin {config.hard_negative_margin}); {dropped} queries had too few and were dropped"
    )
    return TrainingData(mined, "triplets", data.source, data.corpus, data.skipped)


def _augmented(dataset: Dataset, seed: int, notes: list[str]) -> Dataset:
    noisy = augment_queries(dataset["anchor"], seed)
    extra = {c: [dataset[c][i] for i, _ in noisy] for c in dataset.column_names}
    extra["anchor"] = [q for _, q in noisy]
    notes.append(f"added {len(noisy)} augmented queries (case changes, misspellings)")
    return Dataset.from_dict({c: dataset[c] + extra[c] for c in dataset.column_names}).shuffle(seed=seed)


def _training_args(
    config: EmbedRunConfig, output: Path, device: str, can_eval: bool
) -> SentenceTransformerTrainingArguments:
    eval_every: dict[str, Any] = {"eval_strategy": "no", "save_strategy": "steps", "save_steps": 200}
    if can_eval and (config.eval_steps or config.eval_fraction):
        # transformers reads a float < 1 as a fraction of all steps; ours is a fraction of an epoch
        steps = config.eval_steps or min(config.eval_fraction / config.epochs, 0.999)
        eval_every = {"eval_strategy": "steps", "eval_steps": steps, "save_strategy": "steps", "save_steps": steps}
        if config.early_stopping_patience:
            eval_every |= {
                "load_best_model_at_end": True,
                "greater_is_better": True,
                "metric_for_best_model": f"eval_dev_cosine_{config.early_stopping_metric}",
            }
    scheduler = {"steplr": "constant", "linear": "linear", "cosine": "cosine", "constant": "constant"}
    return SentenceTransformerTrainingArguments(
        output_dir=str(work_dir(output)),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type=scheduler[config.scheduler],
        batch_sampler=LengthBucketBatchSampler,
        bf16=pick_dtype(device) == torch.bfloat16,
        use_cpu=device == "cpu",
        seed=config.seed,
        logging_steps=20,
        save_total_limit=2,
        report_to="none",
        dataloader_drop_last=False,
        **eval_every,
    )


def _optimizers(config: EmbedRunConfig, model: SentenceTransformer) -> tuple[Any, Any]:
    """Per-tower learning rates and StepLR are beyond transformers' options: build them here
    (with no scheduler given, the Trainer adds its own warmup and decay to this optimizer)."""
    if config.scheduler != "steplr" and not config.asymmetric:
        return (None, None)
    if config.asymmetric:
        groups = tower_param_groups(model, config)
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": config.weight_decay}]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    if config.scheduler != "steplr":
        return optimizer, None
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)


def _save(model: SentenceTransformer, config: EmbedRunConfig, data: TrainingData, result: EmbedTrainResult) -> None:
    with atomic_dir(result.output, overwrite=True) as tmp:
        model.save(str(tmp))
        (tmp / "fintune_run.json").write_text(json.dumps(config.model_dump(mode="json"), indent=2))
        skip = {"output", "before_result", "after_result"}
        metrics = {k: getattr(result, k) for k in result.__dataclass_fields__ if k not in skip}
        (tmp / "fintune_metrics.json").write_text(json.dumps(metrics, indent=2))
        write_card(tmp, config, data.source, result)
