"""Federated run configs: the shipped run, overrides, errors with file and line, the CLI's wiring."""

from __future__ import annotations

from pathlib import Path

import pytest

from fintune.cli.main import main
from fintune.config.files import ConfigError
from fintune.federated import run as fed_run
from fintune.federated.config import FederatedRunConfig, load_federated_run

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "configs" / "federated.yaml"


def test_shipped_run_with_the_judges_overrides():
    cfg = load_federated_run(
        SHIPPED, "sentiment_clients", {"rounds": 4, "local_steps": 5, "aggregation": "fedsa", "llm": {"lr": 1e-3}}
    )
    assert [(c.name, c.task, c.data) for c in cfg.clients] == [("fpb", "fpb", None), ("tfns", "tfns", None)]
    assert (cfg.rounds, cfg.local_steps, cfg.aggregation) == (4, 5, "fedsa")
    assert cfg.llm.base_model == "smollm2" and cfg.llm.learning_rate == 1e-3
    assert load_federated_run(SHIPPED, "sentiment_clients").aggregation == "ffa"


def test_client_llm_is_the_recipe_on_the_clients_data():
    cfg = load_federated_run(SHIPPED, "sentiment_clients", {"local_steps": 7})
    llm = cfg.client_llm("tfns")
    assert (llm.task, llm.max_steps, llm.scheduler, llm.lora_r) == ("tfns", 7, "constant", 8)
    assert "lora_skip_layers" not in llm.model_fields_set  # a default stays one (shallow models)


def test_problems_name_file_line_and_key(tmp_path):
    path = tmp_path / "fed.yaml"
    path.write_text(
        "r:\n  clients:\n    - name: a\n      task: fpb\n  rounds: 0\n  llm:\n    method: dora\n    lora_rr: 3\n"
    )
    with pytest.raises(ConfigError) as err:
        load_federated_run(path, "r")
    text = str(err.value)
    assert f"{path}:5: r.rounds: Input should be greater than or equal to 1" in text
    assert f"{path}:8: r.llm.lora_rr: unknown key 'lora_rr'" in text


def test_unfederated_method_and_client_data_in_the_recipe_are_refused(tmp_path):
    path = tmp_path / "fed.yaml"
    path.write_text("r:\n  clients: [{name: a, task: fpb}, {name: a, task: tfns}]\n  llm: {method: dora, task: fpb}\n")
    with pytest.raises(ConfigError) as err:
        load_federated_run(path, "r")
    text = str(err.value)
    assert "names must be unique" in text and "'dora' is not federated" in text and "llm.task" in text


def test_cli_federate_passes_run_and_overrides(monkeypatch, tmp_path):
    seen = {}

    def fake(cfg, output, *, overwrite=False):
        seen.update(cfg=cfg, output=output, overwrite=overwrite)
        return fed_run.FederatedResult(Path(output), {"failures": []}, [], 0.0)

    monkeypatch.setattr(fed_run, "federate", fake)
    out = tmp_path / "adapter"
    args = ["llm", "federate", "--config", str(SHIPPED), "--run", "sentiment_clients", "--output", str(out)]
    code = main([*args, "rounds=2", "local_steps=3", "aggregation=fedavg"])
    assert code == 0
    assert (seen["cfg"].rounds, seen["cfg"].local_steps, seen["cfg"].aggregation) == (2, 3, "fedavg")
    assert seen["output"] == str(out)


def test_round_steps_follow_local_epochs_when_set():
    body = {"llm": {"batch_size": 4, "gradient_accumulation_steps": 2}, "clients": [{"name": "a", "task": "fpb"}]}
    cfg = FederatedRunConfig.model_validate(body | {"local_steps": 7})
    assert [cfg.round_steps(n) for n in (1, 100)] == [7, 7]
    cfg = FederatedRunConfig.model_validate(body | {"local_steps": 7, "local_epochs": 1.5})
    assert [cfg.round_steps(n) for n in (1, 16, 17, 100)] == [1, 3, 4, 19]  # ceil(1.5 n / 8), at least 1


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """A stand-in shared data root: fpb and tfns train and dev splits recognisable by their text."""
    from tests.conftest import write_jsonl

    root = tmp_path / "shared"
    labels = {"fpb": ("negative", "neutral", "positive"), "tfns": ("bearish", "neutral", "bullish")}
    for part, names in labels.items():
        for split in ("train", "dev"):
            rows = [{"id": i, "text": f"{part}-{split} {i}", "label": names[i % 3]} for i in range(9)]
            write_jsonl(root / "sentiment" / part / f"{split}.jsonl", rows)
    monkeypatch.setenv("FINTUNE_DATA", str(root))
    return root


def test_a_source_client_trains_and_is_scored_on_its_source_in_the_tasks_labels(sources):
    from fintune.federated.server import validation_sets
    from fintune.llm.train import load_train_data

    cfg = load_federated_run(SHIPPED, "sentiment_shared_labels")
    assert [(c.name, c.task, c.source) for c in cfg.clients] == [
        ("fpb", "sentiment", "fpb"),
        ("tfns", "sentiment", "tfns"),
    ]
    data = load_train_data(cfg.client_llm("tfns"))
    train = [e for _, e in data.train]
    assert len(train) == 9 and all(e.prompt.count("tfns-train") == 1 for e in train)  # only its own source
    assert sorted({e.target for e in train}) == ["negative", "neutral", "positive"]  # bearish/bullish mapped
    assert all(e.labels == ("negative", "neutral", "positive") for e in train)
    assert all("tfns-dev" in e.prompt for e in data.eval["sentiment"])
    scored = validation_sets(cfg)  # the server's: each client on its own source's dev split
    assert all("fpb-dev" in e.prompt for e in scored["fpb"][1]) and all(
        "tfns-dev" in e.prompt for e in scored["tfns"][1]
    )
    own = cfg.model_copy(update={"clients": [cfg.clients[0].model_copy(update={"data": str(sources / "own.jsonl")})]})
    assert own.clients[0].train_file() == str(sources / "own.jsonl")  # a file of its own wins over the source's


def test_a_source_must_belong_to_the_clients_task(tmp_path):
    path = tmp_path / "fed.yaml"
    clients = "    - name: a\n      task: fpb\n      source: tfns\n    - {name: b, task: sentiment, source: ner}\n"
    path.write_text("r:\n  clients:\n" + clients)
    with pytest.raises(ConfigError) as err:
        load_federated_run(path, "r")
    text = str(err.value)
    assert f"{path}:3: r.clients.0: client 'a': source 'tfns' is not a source of task 'fpb' (it has no sources)" in text
    assert "source 'ner' is not a source of task 'sentiment' (its sources are fpb, tfns, fiqa_sa_score)" in text
