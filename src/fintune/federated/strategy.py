"""fintune's LoRA aggregation as a Flower strategy: FedAvg's sampling and round loop, LoRA-aware averaging.

Per round it sends each sampled client the global adapter (all of it the first time a client is
sampled, so every client starts from the server's seeded initialisation; afterwards only the shared
half), checks that each reply holds only the arrays the aggregation shares, aggregates them with
`fintune.federated.aggregation`, and keeps one record per round (per-client loss and example counts,
bytes, failures, fedavg's product error).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from fintune.federated.aggregation import Arrays, aggregate, shared_names
from fintune.federated.config import FederatedRunConfig
from fintune.federated.records import (
    ARRAYS,
    CONFIG,
    IDENTITY,
    METRICS,
    QUERY_NAME,
    VALIDATION,
    from_record,
    to_record,
)

log = logging.getLogger(__name__)


class LoraStrategy(FedAvg):
    def __init__(
        self,
        cfg: FederatedRunConfig,
        node_names: dict[int, str],
        on_round: Callable[[dict[str, Any]], None] | None = None,
        personal_dir: str = "",
    ) -> None:
        n = len(cfg.clients)
        super().__init__(
            fraction_train=cfg.fraction,
            fraction_evaluate=0.0,  # validation is scored by the server (or, under fedsa, in the train reply)
            min_train_nodes=max(1, math.ceil(cfg.fraction * n)),
            min_evaluate_nodes=0,
            min_available_nodes=n,
            arrayrecord_key=ARRAYS,
            configrecord_key=CONFIG,
        )
        self.cfg = cfg
        self.node_names = node_names
        self.on_round = on_round
        self.personal_dir = personal_dir
        self.records: list[dict[str, Any]] = []
        self.received_names: list[dict[str, list[str]]] = []  # per round, client -> array names the server got
        self._current: dict[str, Any] = {}
        self._initialised: set[int] = set()
        self._global: Arrays = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._current = {"round": server_round, "started": time.perf_counter()}
        self._global = from_record(arrays)
        shared = set(shared_names(list(self._global), self.cfg.aggregation))
        settings = ConfigRecord(
            {
                **dict(config),
                "server-round": server_round,
                "final": server_round == self.cfg.rounds,
                "personal-dir": self.personal_dir,
            }
        )
        messages, sent = [], 0
        for msg in super().configure_train(server_round, arrays, config, grid):
            node = msg.metadata.dst_node_id
            part = self._global if node not in self._initialised else {n: self._global[n] for n in sorted(shared)}
            record = to_record(part)
            sent += record.count_bytes()
            self._initialised.add(node)
            content = RecordDict({ARRAYS: record, CONFIG: settings})
            messages.append(Message(content=content, message_type=MessageType.TRAIN, dst_node_id=node))
        self._current["bytes_sent"] = sent
        self._current["clients_sampled"] = sorted(self.node_names.get(m.metadata.dst_node_id, "?") for m in messages)
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        allowed = set(shared_names(list(self._global), self.cfg.aggregation))
        clients: dict[str, dict[str, float]] = {}
        failures: list[dict[str, str]] = []
        updates, weights, received, names = [], [], 0, {}
        for msg in replies:
            name = self.node_names.get(msg.metadata.src_node_id, f"node {msg.metadata.src_node_id}")
            if msg.has_error():
                failures.append({"client": name, "error": client_error(str(msg.error.reason))})
                log.error("client %s failed in round %d: %s", name, server_round, msg.error.reason)
                continue
            content = msg.content
            record = content.array_records[ARRAYS]
            received += record.count_bytes()
            got = sorted(record)
            names[name] = got
            extra = sorted(set(got) - allowed)
            if extra:  # a client that sends what it must not is left out of the average, loudly
                failures.append({"client": name, "error": f"sent arrays outside '{self.cfg.aggregation}': {extra[0]}"})
                continue
            metrics = dict(content.metric_records[METRICS])
            clients[name] = {k.replace("-", "_"): float(v) for k, v in metrics.items()}  # type: ignore[arg-type]
            if VALIDATION in content.metric_records:
                clients[name]["validation"] = dict(content.metric_records[VALIDATION])  # type: ignore[assignment]
            updates.append(from_record(record))
            weights.append(float(metrics["num-examples"]))  # type: ignore[arg-type]
        self.received_names.append(names)
        self._current.update(clients=clients, failures=failures, bytes_received=received)
        if not updates:
            log.error("round %d: no client update to aggregate; the global adapter is unchanged", server_round)
            return None, None
        shared, errors = aggregate(self.cfg.aggregation, updates, weights)
        loss = float(np.average([c["train_loss"] for c in clients.values()], weights=weights))
        self._current["train_loss"] = loss
        if errors:  # fedavg: how far mean(B)·mean(A) is from mean(B·A)
            values = list(errors.values())
            self._current["product_error"] = {"mean": float(np.mean(values)), "max": float(np.max(values))}
            log.info(
                "round %d fedavg: |mean(BA) - mean(B)mean(A)|_F per module: mean %.3g, max %.3g",
                server_round,
                float(np.mean(values)),
                float(np.max(values)),
            )
        self._global = self._global | shared
        return to_record(self._global), MetricRecord({"train-loss": loss})

    @property
    def global_arrays(self) -> Arrays:
        """The global adapter now: the server's initialisation with every aggregated half applied."""
        return self._global

    def finish_round(self, server_round: int, validation: dict[str, dict[str, float]]) -> dict[str, Any]:
        """Close the round's record with its validation metrics and wall time; round 0 is the start."""
        if server_round == 0:
            record: dict[str, Any] = {"round": 0}
        else:
            record = dict(self._current)
            record["wall_seconds"] = time.perf_counter() - record.pop("started")
            fedsa = {n: c.pop("validation") for n, c in record.get("clients", {}).items() if "validation" in c}
            validation = validation or fedsa
        record["validation"] = validation
        self.records.append(record)
        if self.on_round:
            self.on_round(record)
        return record


def client_error(reason: str) -> str:
    """The client's own exception message out of the runtime's wrapping (Ray's traceback, Flower's prefix)."""
    marker = "occurred. Message: "
    if marker in reason:  # flwr wraps str(exception) as "...ClientAppException occurred. Message: <text>"
        reason = reason.rsplit(marker, 1)[1]
    return reason.strip().removesuffix("'>").strip()


def identify_nodes(grid: Grid, expected: int, timeout: float) -> dict[int, str]:
    """node id -> client name, asked of every node once (failures later are reported by name)."""
    deadline = time.monotonic() + timeout
    nodes = list(grid.get_node_ids())
    while len(nodes) < expected:  # SuperNodes may still be connecting
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(nodes)} of {expected} clients connected within {timeout:.0f} s")
        time.sleep(1)
        nodes = list(grid.get_node_ids())
    asks = [Message(content=RecordDict({}), message_type=QUERY_NAME, dst_node_id=node) for node in nodes]
    names = {}
    for reply in grid.send_and_receive(asks, timeout=timeout):
        if reply.has_error():
            node = reply.metadata.src_node_id
            raise RuntimeError(f"node {node} did not say which client it is: {reply.error.reason}")
        names[reply.metadata.src_node_id] = str(reply.content.config_records[IDENTITY]["client"])
    return names
