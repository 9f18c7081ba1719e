"""`FederatedRunConfig`: the LLM recipe every client trains, the clients with their own data, the rounds.

Named runs come from the same files and `key=value` overrides as the trainers' (fintune.config.files);
a federated run is its own kind (`pipeline: federated`), so it is validated here rather than through the
embed/llm pipeline table. The LoRA settings are an `llm:` LLMRunConfig, not a copy of its fields.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fintune.config.files import (
    ConfigError,
    ConfigProblem,
    _line,  # the named-run files' own line finder: one way to point at a YAML line
    _merge,
    canonical_keys,
    read_runs,
)
from fintune.config.schema import CONTRADICTION_SEP, LLMRunConfig
from fintune.data.tasks import get_task
from fintune.federated.aggregation import Aggregation

# Methods whose adapter is plain A/B pairs from a seeded initialisation: PiSSA/LoftQ rewrite the base
# weights at init, DoRA adds magnitude vectors that none of the three aggregations is defined for.
FEDERATED_METHODS = ("lora", "rslora", "qlora")
CLIENT_DATA_KEYS = ("task", "tasks", "dataset_path", "eval_path")


class ClientSpec(BaseModel):
    """One institution: a name and its own data (a registry task's split, or its own file)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="client name (records, personalised adapter folder)")
    task: str | None = Field(None, description="registry task: prompt, labels and metric (see `fintune data tasks`)")
    source: str | None = Field(
        None,
        description="one source of a multi-source task (sentiment: fpb, tfns, fiqa_sa_score): the client holds "
        "that source's records, trained and scored in the task's one label set",
    )
    data: str | None = Field(None, description="training file (default: the task's, or its source's, train split)")
    eval_data: str | None = Field(None, description="validation file (default: the task's, or its source's, dev split)")

    @model_validator(mode="after")
    def _has_data(self) -> ClientSpec:
        if self.task is None and self.data is None:
            raise ValueError(f"client '{self.name}' needs a task or a data file")
        if self.source is not None:
            parts = get_task(self.task).parts if self.task else ()
            if self.source not in parts:
                have = f"its sources are {', '.join(parts)}" if parts else "it has no sources"
                raise ValueError(f"client '{self.name}': source '{self.source}' is not a source of task "
                                 f"'{self.task}' ({have})")  # fmt: skip
        return self

    def train_file(self) -> str | None:
        """The client's training file: its own, its source's train split, or None (the task's train split)."""
        return self.data or self._source_file("train")

    def eval_file(self) -> str | None:
        """The client's validation file: its own, its source's dev split, or None (the task's dev split)."""
        return self.eval_data or self._source_file("dev")

    def _source_file(self, split: str) -> str | None:
        # a source's file in its own schema: the multi-source task maps it onto its labels (llm.data.file_part)
        return str(get_task(self.source).path(split)) if self.source else None


class FederatedRunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    pipeline: Literal["federated"] = "federated"
    description: str | None = Field(None, description="free text kept with the run")
    output: str | None = Field(None, description="output adapter folder (written atomically)")
    llm: LLMRunConfig = Field(
        default_factory=LLMRunConfig, description="base model and LoRA recipe every client trains (no data keys)"
    )
    clients: list[ClientSpec] = Field(min_length=1, description="the clients, each with its own data")
    rounds: int = Field(3, ge=1, description="federated rounds")
    local_steps: int = Field(10, ge=1, description="optimizer steps each client trains per round")
    local_epochs: float | None = Field(
        None, gt=0, description="passes over its own data each client trains per round; when set, replaces local_steps"
    )
    fraction: float = Field(1.0, gt=0, le=1, description="fraction of the clients sampled per round")
    aggregation: Aggregation = Field("ffa", description="fedavg (A, B averaged), ffa (A frozen), fedsa (A only)")
    proximal_mu: float = Field(0.0, ge=0, description="FedProx: weight of (mu/2)·‖w − w_global‖² in the local loss")
    eval_limit: int = Field(32, ge=1, description="validation examples per client task scored each round")
    eval_base: bool = Field(True, description="also score the untrained start (round 0)")
    torch_threads: int = Field(1, ge=1, description="torch threads per client and for the server's scoring")
    client_cpus: float = Field(1.0, gt=0, description="CPUs the simulation reserves per client")
    timeout_s: float = Field(3600.0, gt=0, description="seconds the server waits for a round's replies")

    @model_validator(mode="after")
    def _consistent(self) -> FederatedRunConfig:
        problems = []
        names = [c.name for c in self.clients]
        if len(set(names)) != len(names):
            problems.append(f"clients: names must be unique, got {names}")
        if self.llm.resolved_method not in FEDERATED_METHODS:
            problems.append(
                f"llm.method '{self.llm.resolved_method}' is not federated; use one of {', '.join(FEDERATED_METHODS)}"
            )
        taken = [k for k in CLIENT_DATA_KEYS if getattr(self.llm, k) is not None]
        if taken:
            problems.append(f"llm.{taken[0]}: data belong to the clients (clients: - name, task, data)")
        if problems:
            raise ValueError(CONTRADICTION_SEP.join(problems))
        return self

    def round_steps(self, examples: int) -> int:
        """Optimizer steps a client with `examples` training records trains per round."""
        if self.local_epochs is None:
            return self.local_steps
        per_step = self.llm.batch_size * self.llm.gradient_accumulation_steps
        return max(1, math.ceil(self.local_epochs * examples / per_step))

    def client(self, name: str) -> ClientSpec:
        for c in self.clients:
            if c.name == name:
                return c
        raise KeyError(f"no client '{name}'; clients: {', '.join(c.name for c in self.clients)}")

    def client_llm(self, name: str) -> LLMRunConfig:
        """The LLM run a client trains each round: the shared recipe on the client's own data."""
        spec = self.client(name)
        # exclude_unset: a default stays a default (lora_skip_layers gives way on a shallow model)
        body = self.llm.model_dump(exclude={"pipeline"}, exclude_unset=True) | {
            "task": spec.task,
            "dataset_path": spec.train_file(),
            "eval_path": spec.eval_file(),
            "eval_limit": self.eval_limit,
            "max_steps": self.local_steps,
            "warmup_ratio": 0.0,  # a warmup or decay would restart every round
            "scheduler": "constant",
            "eval_each_epoch": False,  # the server scores each round
        }
        return LLMRunConfig.model_validate(body)


def load_federated_run(
    path: str | Path | None, run: str | None, overrides: dict[str, Any] | None = None
) -> FederatedRunConfig:
    """The run `run` of `path` with `key=value` overrides on top (`llm.lora_r=8` reaches the recipe)."""
    body: dict[str, Any] = {}
    node = None
    file = Path(path) if path else None
    if file is not None:
        runs, node = read_runs(file)
        if run is None and len(runs) == 1:
            run = next(iter(runs))
        if run not in runs:
            hint = f"choose a run with --run: {', '.join(runs)}" if run is None else f"no run named '{run}'"
            raise ConfigError([ConfigProblem(file, None, run or "", f"{hint}; runs: {', '.join(runs)}")])
        body = runs[run]
    body = _merge(body, overrides or {})
    if isinstance(body.get("llm"), dict):
        body["llm"] = canonical_keys(body["llm"], "llm")  # `lr` beside `learning_rate` means the same key
    try:
        return FederatedRunConfig.model_validate(body)
    except ValidationError as exc:
        raise ConfigError([_problem(file, node, run or "", err) for err in exc.errors()]) from None


def _problem(file: Path | None, node: yaml.Node | None, run: str, err: Any) -> ConfigProblem:
    keys = [k for k in (run, *(str(p) for p in err["loc"])) if k]
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key '{keys[-1]}'"
    elif "input" in err and not isinstance(err["input"], dict | list):
        message = f"{message} (got {err['input']!r})"
    return ConfigProblem(file, _line(node, keys), ".".join(keys), message)
