"""LoraStrategy without a runtime: what goes out, what it accepts back, how failures are named."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict

from fintune.federated.records import ARRAYS, METRICS, from_record, to_record
from fintune.federated.strategy import LoraStrategy, client_error
from tests.unit.federated.conftest import make_cfg

A, B = "m.lora_A.weight", "m.lora_B.weight"
GLOBAL = {A: np.array([[1.0, 2.0]], dtype=np.float32), B: np.zeros((2, 1), dtype=np.float32)}
NODES = {11: "a", 12: "b", 13: "c"}


class FakeGrid:  # what FedAvg's sampling asks of a Grid
    def get_node_ids(self):
        return list(NODES)


def _strategy(tmp_path, aggregation):
    files = {n: tmp_path / f"{n}.jsonl" for n in NODES.values()}
    cfg = make_cfg("unused-model", files, aggregation, names=tuple(NODES.values()))
    return LoraStrategy(cfg, dict(NODES))


def _reply(out: Message, arrays, examples, loss=1.0):
    metrics = MetricRecord({"num-examples": examples, "train-loss": loss, "train-seconds": 0.1})
    return Message(RecordDict({ARRAYS: to_record(arrays), METRICS: metrics}), reply_to=out)


def test_first_contact_gets_the_whole_adapter_then_only_the_shared_half(tmp_path):
    strategy = _strategy(tmp_path, "ffa")
    first = list(strategy.configure_train(1, to_record(GLOBAL), ConfigRecord(), FakeGrid()))
    assert all(set(m.content.array_records[ARRAYS]) == {A, B} for m in first)
    second = list(strategy.configure_train(2, to_record(GLOBAL), ConfigRecord(), FakeGrid()))
    assert all(set(m.content.array_records[ARRAYS]) == {B} for m in second)
    assert second[0].content.config_records["config"]["final"] is True  # rounds = 2


def test_ffa_round_averages_b_by_examples_and_names_the_failures(tmp_path):
    strategy = _strategy(tmp_path, "ffa")
    out = {
        m.metadata.dst_node_id: m for m in strategy.configure_train(1, to_record(GLOBAL), ConfigRecord(), FakeGrid())
    }
    replies = [
        _reply(out[11], {B: np.array([[1.0], [0.0]], dtype=np.float32)}, 1, loss=2.0),
        _reply(out[12], {B: np.array([[3.0], [4.0]], dtype=np.float32)}, 3, loss=1.0),
        Message(
            Error(code=2, reason="Exception ClientAppException occurred. Message: c.jsonl:2: label: bad'>"),
            reply_to=out[13],
        ),
    ]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert isinstance(arrays, ArrayRecord)
    new = from_record(arrays)
    np.testing.assert_allclose(new[B], [[2.5], [3.0]])  # (1·[1,0] + 3·[3,4]) / 4
    np.testing.assert_array_equal(new[A], GLOBAL[A])  # A stays the shared init
    assert metrics is not None and metrics["train-loss"] == (2.0 * 1 + 1.0 * 3) / 4
    record = strategy.finish_round(1, {})
    assert record["failures"] == [{"client": "c", "error": "c.jsonl:2: label: bad"}]
    assert set(record["clients"]) == {"a", "b"} and record["bytes_received"] > 0
    assert strategy.received_names == [{"a": [B], "b": [B]}]


def test_a_client_sending_more_than_its_share_is_left_out(tmp_path):
    strategy = _strategy(tmp_path, "ffa")
    out = {
        m.metadata.dst_node_id: m for m in strategy.configure_train(1, to_record(GLOBAL), ConfigRecord(), FakeGrid())
    }
    leaky = {A: np.ones((1, 2), dtype=np.float32), B: np.ones((2, 1), dtype=np.float32)}
    arrays, _ = strategy.aggregate_train(1, [_reply(out[11], leaky, 1), _reply(out[12], {B: 2 * leaky[B]}, 1)])
    assert arrays is not None
    np.testing.assert_allclose(from_record(arrays)[B], [[2.0], [2.0]])  # only b's update
    record = strategy.finish_round(1, {})
    assert record["failures"][0]["client"] == "a" and "outside 'ffa'" in record["failures"][0]["error"]


def test_fedavg_round_logs_the_product_error(tmp_path):
    strategy = _strategy(tmp_path, "fedavg")
    out = {
        m.metadata.dst_node_id: m for m in strategy.configure_train(1, to_record(GLOBAL), ConfigRecord(), FakeGrid())
    }
    one = {A: np.array([[1.0, 0.0]], dtype=np.float32), B: np.array([[1.0], [0.0]], dtype=np.float32)}
    two = {A: np.array([[0.0, 1.0]], dtype=np.float32), B: np.array([[0.0], [1.0]], dtype=np.float32)}
    strategy.aggregate_train(1, [_reply(out[11], one, 1), _reply(out[12], two, 3)])
    record = strategy.finish_round(1, {})
    assert record["product_error"]["max"] == pytest.approx(0.375)  # hand value: see test_aggregation


def test_client_error_keeps_only_the_clients_message():
    wrapped = (
        "<class 'RayTaskError'>:<'ray::... Traceback ... Exception ClientAppException occurred. Message: f.jsonl:3: x'>"
    )
    assert client_error(wrapped) == "f.jsonl:3: x"
    assert client_error("plain reason") == "plain reason"
