"""Flower records <-> fintune values: named arrays, the run config, and a client's identity."""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context

from fintune.federated.aggregation import Arrays
from fintune.federated.config import FederatedRunConfig

CONFIG_KEY = "fintune-config"  # run_config key carrying the whole FederatedRunConfig as JSON (deployment)
ARRAYS, CONFIG, METRICS, VALIDATION, IDENTITY = "arrays", "config", "metrics", "validation", "identity"
QUERY_NAME = "query.name"  # a query message: the server asks a node which client it is


def to_record(arrays: Arrays) -> ArrayRecord:
    return ArrayRecord({name: Array(np.ascontiguousarray(a)) for name, a in arrays.items()})


def from_record(record: ArrayRecord) -> Arrays:
    return {name: array.numpy() for name, array in record.items()}


def run_config(cfg: FederatedRunConfig | None, context: Context) -> FederatedRunConfig:
    """The run's config: given in-process (simulation), else from the run config Flower hands the app."""
    if cfg is not None:
        return cfg
    raw = context.run_config.get(CONFIG_KEY)
    if not isinstance(raw, str):
        raise ValueError(f"the Flower run config has no '{CONFIG_KEY}' (pass it with --run-config)")
    return FederatedRunConfig.model_validate_json(raw)


def client_name(cfg: FederatedRunConfig, node_config: dict[str, Any]) -> str:
    """Which client this node is: `client=<name>` in its node config, else the simulation's partition id."""
    if "client" in node_config:
        name = str(node_config["client"])
        cfg.client(name)  # a KeyError naming the clients when it is not one of them
        return name
    if "partition-id" in node_config:
        return cfg.clients[int(node_config["partition-id"])].name
    raise ValueError("the node config names no client: start the SuperNode with --node-config 'client=\"NAME\"'")
