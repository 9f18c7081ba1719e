"""Hyperparameter search over a run config's `search_space` with Optuna (TPE, median pruning).

Each trial trains from the run config with sampled values and is scored by the training evaluator
on the dev split (judged passages plus sampled distractors: seconds, not a full corpus pass); the
evaluator also reports mid-training so hopeless trials are pruned. The study lives in the given
storage (e.g. sqlite), so an interrupted search resumes where it stopped.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from transformers import TrainerCallback

from fintune.artifacts import atomic_dir
from fintune.config.schema import EmbedRunConfig, SearchDimension
from fintune.embed.train import train_embedder
from fintune.errors import UsageError

log = logging.getLogger(__name__)

DEFAULT_SPACE = {
    "learning_rate": SearchDimension(low=5e-6, high=1e-4, log=True),
    "num_fixed_layers": SearchDimension(choices=[0, 2, 4]),
    "batch_size": SearchDimension(choices=[16, 32, 64]),
}
INT_KEYS = {"num_fixed_layers", "batch_size", "hard_negatives", "step_size", "max_seq_length"}


@dataclass
class TuneResult:
    best_params: dict[str, Any]
    best_value: float
    best_model: Path
    table: list[dict[str, Any]]


class _OptunaReport(TrainerCallback):
    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial = trial
        self.metric = metric

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and self.metric in metrics:
            self.trial.report(metrics[self.metric], step=state.global_step)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"{self.metric} {metrics[self.metric]:.4f} at step {state.global_step}")


def sample(trial: optuna.Trial, space: dict[str, SearchDimension]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, dim in space.items():
        if dim.choices is not None:
            params[name] = trial.suggest_categorical(name, dim.choices)
            continue
        low, high = dim.low, dim.high
        if low is None or high is None:  # cannot happen: SearchDimension requires both when it has no choices
            raise UsageError(f"search_space.{name}: give either choices or both low and high")
        if name in INT_KEYS:
            params[name] = trial.suggest_int(name, int(low), int(high), log=dim.log)
        else:
            params[name] = trial.suggest_float(name, low, high, log=dim.log)
    return params


def tune(
    config: EmbedRunConfig, trials: int, storage: str, study_name: str | None = None, metric: str = "ndcg@10"
) -> TuneResult:
    if not config.output:
        raise UsageError("an output folder is needed for the best model (--output)")
    output = Path(config.output)
    trials_dir = output.with_name(f".{output.name}.trials")
    space = config.search_space or DEFAULT_SPACE
    unknown = sorted(set(space) - set(EmbedRunConfig.model_fields))
    if unknown:
        raise UsageError(f"search_space names unknown settings: {', '.join(unknown)}")
    key = f"eval_dev_cosine_{metric}"
    study = optuna.create_study(
        study_name=study_name or f"fintune-{output.name}",
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )

    def objective(trial: optuna.Trial) -> float:
        params = sample(trial, space)
        values = config.model_dump() | params | {"output": str(trials_dir / f"trial-{trial.number}")}
        values["eval_fraction"] = values.get("eval_fraction") or 0.5
        values.pop("eval_steps", None)
        trial_config = EmbedRunConfig.model_validate(values)
        result = train_embedder(
            trial_config, evaluate=False, overwrite=True, resume=False, callbacks=[_OptunaReport(trial, key)]
        )
        if not result.eval_metrics or key not in result.eval_metrics:
            raise UsageError(f"no dev split to score trials on ({config.data} needs qrels/{config.eval_split}.tsv)")
        return result.eval_metrics[key]

    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    remaining = max(0, trials - len(study.trials))
    log.info("study %s: %d trial(s) done, %d to run", study.study_name, done, remaining)
    if remaining:
        study.optimize(objective, n_trials=remaining, catch=())
    best = study.best_trial
    if best.value is None:  # cannot happen: the best trial is a completed one, and those have a value
        raise RuntimeError(f"the best trial {best.number} has no value")
    best_dir = trials_dir / f"trial-{best.number}"
    if not best_dir.is_dir():
        raise RuntimeError(f"the best trial's model {best_dir} is missing; rerun with a new --study")
    with atomic_dir(output, overwrite=True) as tmp:
        shutil.copytree(best_dir, tmp, dirs_exist_ok=True)
    table = [{"trial": t.number, "state": t.state.name.lower(), "value": t.value, **t.params} for t in study.trials]
    return TuneResult(best.params, best.value, output, table)
