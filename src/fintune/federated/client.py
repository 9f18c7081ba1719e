"""The Flower ClientApp: train the LoRA recipe on this client's own data, send back only adapter arrays.

What leaves a client: the shared half of its adapter by parameter name (all of it for fedavg, B for ffa,
A for fedsa), its example count and training loss, and under fedsa the validation metrics of its
personalised adapter. Its data and (under fedsa) its B never leave it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fintune.artifacts import atomic_dir
from fintune.config.saved import write_run
from fintune.config.schema import LLMRunConfig
from fintune.federated import local
from fintune.federated.aggregation import shared_names
from fintune.federated.config import FederatedRunConfig
from fintune.federated.records import (
    ARRAYS,
    CONFIG,
    IDENTITY,
    METRICS,
    QUERY_NAME,
    VALIDATION,
    client_name,
    from_record,
    run_config,
    to_record,
)
from fintune.llm.data import sample_examples
from fintune.llm.prompts import Example
from fintune.llm.train import encode_all, load_train_data

log = logging.getLogger(__name__)
STATE_KEY = "adapter"  # the client's whole adapter between rounds (its own B under fedsa), in Flower's context


@dataclass
class ClientData:
    train: Dataset
    validation: list[Example]
    family: str


_DATA: dict[str, ClientData] = {}  # per process: a client's encoded examples, read once


def client_data(cfg: FederatedRunConfig, name: str) -> ClientData:
    """This client's encoded training examples and its validation examples (read before any model)."""
    if name not in _DATA:
        llm = cfg.client_llm(name)
        data = load_train_data(llm)  # a malformed file raises DataError naming file and line, in seconds
        am = local.adapter_model(llm)
        train, _ = encode_all(am.tokenizer, [e for _, e in data.train], llm)
        task = next(iter(data.sets))
        _DATA[name] = ClientData(train, data.eval.get(task, []), data.sets[task].family)
    return _DATA[name]


def make_client_app(cfg: FederatedRunConfig | None = None) -> ClientApp:
    """A ClientApp for `cfg` (simulation), or one that reads it from Flower's run config (deployment)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return train_message(run_config(cfg, context), msg, context)

    @app.query(QUERY_NAME.split(".")[1])
    def query(msg: Message, context: Context) -> Message:
        name = client_name(run_config(cfg, context), dict(context.node_config))
        return Message(RecordDict({IDENTITY: ConfigRecord({"client": name})}), reply_to=msg)

    return app


def train_message(cfg: FederatedRunConfig, msg: Message, context: Context) -> Message:
    name = client_name(cfg, dict(context.node_config))
    torch.set_num_threads(cfg.torch_threads)
    llm = cfg.client_llm(name)
    data = client_data(cfg, name)
    am = local.adapter_model(llm)
    settings = msg.content.config_records[CONFIG]
    server_round = int(settings["server-round"])  # type: ignore[arg-type]  # Flower types values as a union
    received = from_record(msg.content.array_records[ARRAYS])
    kept = context.state.array_records.get(STATE_KEY)
    start = am.init if kept is None else from_record(kept)  # a client's first round starts from the seeded init
    local.set_arrays(am.model, start | received)
    local.freeze_a(am.model, cfg.aggregation == "ffa")
    steps = cfg.round_steps(len(data.train))
    result = local.train_round(am, llm, data.train, server_round, steps, cfg.proximal_mu)
    arrays = local.get_arrays(am.model)
    context.state.array_records[STATE_KEY] = to_record(arrays)
    sent = {n: arrays[n] for n in shared_names(list(arrays), cfg.aggregation)}
    log.info("client %s round %d: loss %.4f on %d examples", name, server_round, result.loss, result.examples)
    content = RecordDict(
        {
            ARRAYS: to_record(sent),
            METRICS: MetricRecord(
                {"num-examples": result.examples, "train-loss": result.loss, "train-seconds": result.seconds}
            ),
            IDENTITY: ConfigRecord({"client": name}),
        }
    )
    if cfg.aggregation == "fedsa":  # the personalised adapter exists only here: score it here
        content[VALIDATION] = _validate(cfg, am, data)
        folder = context.node_config.get("personal-dir") or settings.get("personal-dir")
        if settings.get("final") and isinstance(folder, str) and folder:
            _save_personal(am, llm, Path(folder) / name)
    return Message(content, reply_to=msg)


def _validate(cfg: FederatedRunConfig, am: local.AdapterModel, data: ClientData) -> MetricRecord:
    examples = sample_examples(data.validation, cfg.eval_limit, cfg.llm.seed)  # the server's sample of the same file
    return MetricRecord(local.score_examples(am, cfg.llm, examples, data.family) if examples else {})  # type: ignore[arg-type]


def _save_personal(am: local.AdapterModel, llm: LLMRunConfig, folder: Path) -> None:
    """FedSA: this client's own adapter (global A, its own B), written where this client runs."""
    with atomic_dir(folder, overwrite=True) as tmp:
        am.model.save_pretrained(str(tmp))
        am.tokenizer.save_pretrained(str(tmp))
        write_run(tmp, llm)


app = make_client_app()  # the deployment runtime's ClientApp (config from Flower's run config)
