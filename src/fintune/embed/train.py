"""Fine-tune a sentence-transformers model from a run config: the recipe around the library's Trainer.

Three phases, as in the LLM trainer: `prepare_training` (model, data, base scores, the Trainer with
its loss, optimiser and evaluator), `run_training` (resuming from the last checkpoint) and
`save_embedder` (the model folder, atomically). `train_embedder` runs all three; the training
benchmark runs the first two, so it times the recipe users run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer import losses as st_losses
from transformers import EarlyStoppingCallback, TrainerCallback

from fintune.artifacts import atomic_dir, last_checkpoint, work_dir
from fintune.config.saved import write_run
from fintune.config.schema import EmbedRunConfig
from fintune.data.beir import BeirData, is_beir_folder, load_beir, splits_of
from fintune.embed.augment import augment_queries
from fintune.embed.card import write_card
from fintune.embed.clock import ClockedTrainer
from fintune.embed.evaluate import RetrievalResult, encode_corpus, evaluate_retrieval, ir_evaluator
from fintune.embed.examples import TrainingData, load_training_data, split_long_documents
from fintune.embed.freezing import freeze_layers
from fintune.embed.grouped import GroupedSplit, anchor_groups, grouped_split, resolve_group_field, training_pairs
from fintune.embed.losses import WeightedLoss, build_loss, check_loss_fits
from fintune.embed.negatives import mine_hard_negatives, with_negatives
from fintune.embed.result import EmbedTrainResult
from fintune.embed.sampler import GroupedBatchSampler, LengthBucketBatchSampler
from fintune.embed.style_check import style_check_data
from fintune.embed.towers import make_asymmetric, router_mapping, tower_param_groups
from fintune.embed.wise import apply_wise, base_weights
from fintune.errors import OutputExistsError, UsageError
from fintune.models.device import pick_device, pick_dtype
from fintune.models.loading import LOAD_LOCK
from fintune.models.resolve import resolve_model

__all__ = ["EmbedSetup", "EmbedTrainResult", "prepare_training", "run_training", "save_embedder", "train_embedder"]

log = logging.getLogger(__name__)


@dataclass
class EmbedSetup:
    """The recipe ready to train: what `prepare_training` builds."""

    config: EmbedRunConfig  # with the defaults the data decided (hard_negatives) filled in
    output: Path
    data: TrainingData
    eval_data: BeirData | None
    trainer: ClockedTrainer
    notes: list[str]
    before: RetrievalResult | None = None  # the base model on the eval split
    grouped: GroupedSplit | None = None  # whole groups held out of training: eval_data is their queries
    style_data: BeirData | None = None  # the other-style check (XBRL term -> explanation)
    style_before: RetrievalResult | None = None
    base_state: dict[str, torch.Tensor] | None = None  # weights before training, for WiSE-FT

    @property
    def validation(self) -> str | None:
        """What the before/after figures are measured on, in words."""
        if self.eval_data is None:
            return None
        return self.grouped.describe() if self.grouped else f"{self.config.eval_split} split"

    @property
    def model(self) -> SentenceTransformer:
        return self.trainer.model  # the asymmetric model, when the recipe built one


def train_embedder(
    config: EmbedRunConfig,
    output: str | Path | None = None,
    *,
    use_gpu: bool | None = None,
    overwrite: bool = False,
    resume: bool = True,
    skip_invalid: bool = False,
    evaluate: bool = True,
    callbacks: list[TrainerCallback] | None = None,
) -> EmbedTrainResult:
    """Train, then save the model folder atomically with its card, run config and metrics.

    `output` defaults to the config's; `evaluate` scores base and tuned model on the full eval split
    (before/after in the card); `callbacks` are extra transformers callbacks (the tuner reports to
    Optuna through one)."""
    setup = prepare_training(
        config,
        output,
        use_gpu=use_gpu,
        overwrite=overwrite,
        skip_invalid=skip_invalid,
        evaluate=evaluate,
        callbacks=callbacks,
    )
    result = run_training(setup, resume=resume)
    if setup.base_state is not None:
        _wise_ft(setup, result)
    result.validation = setup.validation
    if evaluate and setup.eval_data is not None:
        result.after_result = evaluate_retrieval(setup.model, setup.eval_data)
        result.after = result.after_result.metrics
    if setup.style_data is not None and setup.style_before is not None:
        result.style_before = setup.style_before.metrics
        result.style_after = evaluate_retrieval(setup.model, setup.style_data).metrics
    if setup.trainer.evaluator is not None:
        result.eval_metrics = setup.trainer.evaluate()
    save_embedder(setup, result)
    return result


def prepare_training(
    config: EmbedRunConfig,
    output: str | Path | None = None,
    *,
    use_gpu: bool | None = None,
    overwrite: bool = False,
    skip_invalid: bool = False,
    evaluate: bool = True,
    callbacks: list[TrainerCallback] | None = None,
) -> EmbedSetup:
    """Load the model and data, score the base model (`evaluate`), mine negatives, build the Trainer."""
    output = _check_output(config, output, overwrite)
    config = config.model_copy(update={"output": str(output)})
    torch.manual_seed(config.seed)
    device = pick_device(use_gpu)
    with LOAD_LOCK:
        model = SentenceTransformer(str(resolve_model(config.model)), device=device)
    if config.max_seq_length:
        model.max_seq_length = config.max_seq_length
    notes: list[str] = []
    grouped = _grouped_split(config, notes)
    config, data = _training_examples(config, model, skip_invalid, notes, grouped)

    eval_data = grouped.validation if grouped else _eval_split(config)
    before = base_corpus = None
    if evaluate and eval_data is not None:
        before, base_corpus = _score_base(model, eval_data)
        if grouped is not None:  # mine from the training groups' passages only
            base_corpus = base_corpus[grouped.mining_rows]
    style_data = style_check_data() if evaluate and config.style_check else None
    style_before = evaluate_retrieval(model, style_data) if style_data is not None else None

    if config.hard_negatives:
        data = _add_hard_negatives(model, data, config, eval_data, base_corpus, notes)
    if config.augment:
        data.dataset = _augmented(data.dataset, config.seed, notes, data.anchor_groups)
    trainer = _build_trainer(config, output, model, data, eval_data, device, skip_invalid, callbacks, notes)
    base_state = base_weights(trainer.model) if config.wise_alpha is not None else None
    return EmbedSetup(
        config, output, data, eval_data, trainer, notes, before, grouped, style_data, style_before, base_state
    )


def run_training(setup: EmbedSetup, *, resume: bool = True) -> EmbedTrainResult:
    """Train (from the last checkpoint with `resume`); seconds and examples cover the whole run."""
    work = work_dir(setup.output)
    if not resume:
        shutil.rmtree(work, ignore_errors=True)  # a later resume must not pick up an older run's checkpoint
    checkpoint = last_checkpoint(work) if resume else None
    notes = list(setup.notes)
    clock = setup.trainer.clock
    if checkpoint:
        log.info("resuming from %s", checkpoint)
        if not clock.resume_from(checkpoint):
            notes.append(f"resumed from {checkpoint.name}, which holds no totals: time and examples count after it")
    setup.trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = clock.seconds
    return EmbedTrainResult(
        setup.output,
        seconds,
        clock.examples,
        clock.examples / seconds if seconds else 0.0,
        before=setup.before.metrics if setup.before else None,
        notes=notes,
        steps=setup.trainer.state.global_step,
        processes=setup.trainer.args.world_size,
        resumed_from_step=clock.resumed_from_step,
        before_result=setup.before,
    )


def save_embedder(setup: EmbedSetup, result: EmbedTrainResult) -> None:
    """Write the model folder with run config, metrics and card (process zero), then drop the checkpoints."""
    if setup.trainer.is_world_process_zero():
        _save(setup.model, setup.config, setup.data, result)
        shutil.rmtree(work_dir(result.output), ignore_errors=True)
    setup.trainer.accelerator.wait_for_everyone()


def _check_output(config: EmbedRunConfig, output: str | Path | None, overwrite: bool) -> Path:
    target = output or config.output
    if not target:
        raise UsageError("an output folder is needed (--output or output: in the run config)")
    _data_path(config)
    path = Path(target)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; choose another --output or pass --overwrite")
    return path


def _data_path(config: EmbedRunConfig) -> str:
    """The training data (prepare_training checks it first, in _check_output)."""
    if not config.data:
        raise UsageError("training data is needed (--data or data: in the run config)")
    return config.data


def _training_examples(
    config: EmbedRunConfig,
    model: SentenceTransformer,
    skip_invalid: bool,
    notes: list[str],
    grouped: GroupedSplit | None = None,
) -> tuple[EmbedRunConfig, TrainingData]:
    """The training examples, checked against the loss; the config with its data-dependent defaults."""
    data = load_training_data(_data_path(config), config.data_format, "train", skip_invalid, config.seed)
    if grouped is not None:  # the held-out groups' queries and passages stay out of training
        anchors, positives = training_pairs(grouped.train)
        pairs = Dataset.from_dict({"anchor": anchors, "positive": positives})
        source = f"{data.source}, {len(grouped.held_out)} '{grouped.field}' groups held out"
        data = TrainingData(pairs, "pairs", source, grouped.mining_corpus, data.skipped)
    if config.batch_group_by:
        data.anchor_groups = anchor_groups(grouped.train if grouped else _train_split(config), config.batch_group_by)
        notes.append(f"batches grouped by '{config.batch_group_by}'")
    if data.skipped:
        notes.append(f"skipped {data.skipped} invalid training record(s)")
    if config.hard_negatives and data.shape != "pairs":
        raise UsageError(f"{config.data}: hard negatives are mined for (query, passage) pairs, not {data.shape} data")
    check_loss_fits(config.loss, "triplets" if config.hard_negatives else data.shape, str(config.data))
    if config.split_long_documents:
        limit = model.max_seq_length
        if limit is None:
            raise UsageError("split_long_documents needs a token limit: set max_seq_length (the model has none)")
        split = split_long_documents(data, model.tokenizer, limit)
        notes.append(f"split {split} long text(s) into pieces of at most {limit} tokens")
    notes += _count_truncated(model, data.dataset)
    return config, data


def _score_base(model: SentenceTransformer, eval_data: BeirData) -> tuple[RetrievalResult, torch.Tensor]:
    """The base model's metrics, and its corpus vectors (reused to mine hard negatives)."""
    log.info("scoring the base model on %s (%d queries)", eval_data.split, len(eval_data.queries))
    start = time.perf_counter()
    corpus = encode_corpus(model, eval_data)
    before = evaluate_retrieval(model, eval_data, corpus_embeddings=corpus)
    before.metrics["corpus_docs_per_s"] = len(eval_data.corpus) / (time.perf_counter() - start)
    return before, corpus


def _build_trainer(
    config: EmbedRunConfig,
    output: Path,
    model: SentenceTransformer,
    data: TrainingData,
    eval_data: BeirData | None,
    device: str,
    skip_invalid: bool,
    callbacks: list[TrainerCallback] | None,
    notes: list[str],
) -> ClockedTrainer:
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
    train_dataset, loss = _objective(config, model, data, skip_invalid, notes)
    args = _training_args(config, output, device, eval_data is not None, data.anchor_groups)
    if config.asymmetric:
        args.router_mapping = router_mapping(data.dataset)
    callbacks = list(callbacks or [])
    if config.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    evaluator = None
    if eval_data is not None and args.eval_strategy != "no":  # _training_args evaluates only with eval data
        evaluator = ir_evaluator(eval_data, seed=config.seed)
    return ClockedTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=callbacks,
        optimizers=_optimizers(config, model),
    )


def _objective(
    config: EmbedRunConfig, model: SentenceTransformer, data: TrainingData, skip_invalid: bool, notes: list[str]
) -> tuple[Dataset | dict[str, Dataset], Any]:
    """The training set(s) and their loss(es): the supervised loss, plus a weighted domain objective."""
    # Under `accelerate launch` the process group starts with the Trainer, after the loss is built.
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    loss = build_loss(config.loss, model, config, distributed=distributed)
    if not config.domain_data:
        return data.dataset, loss
    domain = load_training_data(config.domain_data, "simple", skip_invalid=skip_invalid)
    notes.append(f"domain adaptation on {len(domain.dataset)} texts, weight {config.domain_adaptation_weight}")
    weight = config.domain_adaptation_weight
    losses = {
        "supervised": WeightedLoss(loss, 1.0 - weight),
        "domain": WeightedLoss(st_losses.MultipleNegativesRankingLoss(model), weight),
    }
    return {"supervised": data.dataset, "domain": domain.dataset}, losses


def _grouped_split(config: EmbedRunConfig, notes: list[str]) -> GroupedSplit | None:
    """Grouped validation when asked for, or by default when the BEIR train split's queries have a `ticker`."""
    path = Path(_data_path(config))
    if not is_beir_folder(path) or "train" not in splits_of(path):
        if config.validation_group_by not in (None, "none"):
            raise UsageError(f"{path}: grouped validation needs a BEIR folder with qrels/train.tsv")
        return None
    train = load_beir(path, "train", skip_invalid=True)
    field = resolve_group_field(config.validation_group_by, train)
    if field is None:
        return None
    grouped = grouped_split(train, field, config.validation_groups, config.seed)
    log.info(grouped.describe())
    notes.append(grouped.describe())
    return grouped


def _wise_ft(setup: EmbedSetup, result: EmbedTrainResult) -> None:
    """Interpolate the trained weights towards the base (WiSE-FT); 'auto' chooses alpha on the validation."""
    alpha = setup.config.wise_alpha
    if setup.base_state is None or alpha is None:
        return
    if alpha == "auto" and setup.eval_data is None:
        raise UsageError("wise_alpha 'auto' needs validation queries (a BEIR folder with a dev split or groups)")
    evaluator = ir_evaluator(setup.eval_data, seed=setup.config.seed) if setup.eval_data is not None else None

    def score(model: Any) -> float:
        metrics = evaluator(model) if evaluator is not None else {}
        return float(next(v for k, v in metrics.items() if k.endswith("ndcg@10")))

    chosen, scores = apply_wise(setup.model, setup.base_state, alpha, score)
    result.wise_alpha, result.wise_scores = chosen, scores or None
    tried = ", ".join(f"{a:g}: {v:.4f}" for a, v in scores.items())
    result.notes.append(
        f"WiSE-FT: saved (1 - {chosen:g}) x base + {chosen:g} x tuned weights"
        + (f" (validation NDCG@10 on a sampled corpus, by alpha: {tried})" if tried else "")
    )


def validation_data(config: EmbedRunConfig) -> BeirData | None:
    """What a run's before/after figures are measured on: its held-out groups, else its eval split."""
    grouped = _grouped_split(config, [])
    return grouped.validation if grouped else _eval_split(config)


def _train_split(config: EmbedRunConfig) -> BeirData:
    path = Path(_data_path(config))
    if not is_beir_folder(path):
        raise UsageError(f"{path}: batch_group_by groups the queries of a BEIR folder; this is not one")
    return load_beir(path, "train", skip_invalid=True)


def _eval_split(config: EmbedRunConfig) -> BeirData | None:
    path = Path(_data_path(config))
    if not is_beir_folder(path) or config.eval_split not in splits_of(path):
        return None
    return load_beir(path, config.eval_split, skip_invalid=True)


def _count_truncated(model: SentenceTransformer, dataset: Dataset) -> list[str]:
    limit = model.max_seq_length
    if limit is None:  # no limit: nothing is truncated
        return []
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
    count = config.hard_negatives
    if count is None:  # cannot happen: _training_examples fills in the data-dependent default
        raise UsageError("hard_negatives is not set")
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
    negatives = mine_hard_negatives(anchors, positive_ids, base_corpus, count, config.hard_negative_margin)
    mined = with_negatives(data.dataset, negatives, corpus_texts)
    dropped = len(data.dataset) - len(mined)
    notes.append(
        f"mined {config.hard_negatives} hard negative(s) per query with the base model "
        f"(margin {config.hard_negative_margin}); {dropped} queries had too few and were dropped"
    )
    return TrainingData(mined, "triplets", data.source, data.corpus, data.skipped, anchor_groups=data.anchor_groups)


def _augmented(dataset: Dataset, seed: int, notes: list[str], groups: dict[str, str] | None = None) -> Dataset:
    noisy = augment_queries(dataset["anchor"], seed)
    extra = {c: [dataset[c][i] for i, _ in noisy] for c in dataset.column_names}
    extra["anchor"] = [q for _, q in noisy]
    if groups is not None:  # a noisy copy batches with its original's group
        anchors = dataset["anchor"]
        groups.update({q: groups[anchors[i]] for i, q in noisy if anchors[i] in groups})
    notes.append(f"added {len(noisy)} augmented queries (case changes, misspellings)")
    return Dataset.from_dict({c: dataset[c] + extra[c] for c in dataset.column_names}).shuffle(seed=seed)


def _training_args(
    config: EmbedRunConfig, output: Path, device: str, can_eval: bool, groups: dict[str, str] | None = None
) -> SentenceTransformerTrainingArguments:
    eval_every: dict[str, Any] = {"eval_strategy": "no", "save_strategy": "steps", "save_steps": 200}
    # transformers reads a float < 1 as a fraction of all steps; ours is a fraction of an epoch
    steps = config.eval_steps or (min(config.eval_fraction / config.epochs, 0.999) if config.eval_fraction else None)
    if can_eval and steps:
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
        batch_sampler=partial(GroupedBatchSampler, anchor_groups=groups) if groups else LengthBucketBatchSampler,
        bf16=_bf16(config, device),
        use_cpu=device == "cpu",
        seed=config.seed,
        logging_steps=20,
        save_total_limit=2,
        report_to="none",
        dataloader_drop_last=False,
        **eval_every,
    )


def _bf16(config: EmbedRunConfig, device: str) -> bool:
    """bf16 autocast: asked for, or (auto) where the hardware runs it natively and, on a CPU, measurably
    faster than fp32 (pick_dtype; see the embedding section of the README: same quality, so speed decides)."""
    if config.precision != "auto":
        return config.precision == "bf16"
    return pick_dtype(device) == torch.bfloat16


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
    if config.step_size is None:  # cannot happen: the config's validator requires it for 'steplr'
        raise UsageError("scheduler 'steplr' needs step_size")
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)


def _save(model: SentenceTransformer, config: EmbedRunConfig, data: TrainingData, result: EmbedTrainResult) -> None:
    with atomic_dir(result.output, overwrite=True) as tmp:
        model.save(str(tmp))
        write_run(tmp, config)
        skip = {"output", "before_result", "after_result"}
        metrics = {k: getattr(result, k) for k in result.__dataclass_fields__ if k not in skip}
        (tmp / "fintune_metrics.json").write_text(json.dumps(metrics, indent=2))
        write_card(tmp, config, data.source, result)
