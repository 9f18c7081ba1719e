"""A seeded tiny Llama and two small clients' files for the federated mechanics (no Flower runtime)."""

from __future__ import annotations

import json

import pytest
import torch

from fintune.federated.config import FederatedRunConfig
from tests.unit.llm.conftest import make_tiny_llm

ROWS = [("profit rose", "positive"), ("sales fell", "negative"), ("sales were flat", "neutral")] * 8


@pytest.fixture(scope="session")
def fed_model_dir(tmp_path_factory):
    torch.manual_seed(1)
    return make_tiny_llm(tmp_path_factory.mktemp("fed_tiny_llm"))


@pytest.fixture(scope="session")
def client_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fed_clients")
    files = {}
    for name, suffix in (("a", ""), ("b", " the company said")):
        path = root / f"{name}.jsonl"
        rows = [{"id": i, "text": text + suffix, "label": label} for i, (text, label) in enumerate(ROWS)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files[name] = path
    bad = root / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "profit rose", "label": "positive"}\n{"id": 2, "text": "x", "label": "up"}\n')
    files["bad"] = bad
    return files


def make_cfg(model_dir, files, aggregation="ffa", names=("a", "b"), **kw) -> FederatedRunConfig:
    clients = [{"name": n, "task": "fpb", "data": str(files[n]), "eval_data": str(files["a"])} for n in names]
    llm = {"base_model": str(model_dir), "lora_r": 4, "batch_size": 4, "learning_rate": 1e-2, "max_seq_length": 64}
    body = {"llm": llm, "clients": clients, "rounds": 2, "local_steps": 2, "eval_limit": 4, "aggregation": aggregation}
    return FederatedRunConfig.model_validate(body | kw)


@pytest.fixture(autouse=True)
def flower_task_identity(monkeypatch):
    """Flower stamps every new Message with the running task's ids; its runtimes set them, tests do here."""
    from flwr.supercore.task_identity import TaskIdentity

    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)
