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
