"""The ServerApp's failures reach the caller; the deployment app folder carries the run."""

from __future__ import annotations

import tomllib

import pytest
from flwr.app import Context, RecordDict

from fintune.federated.config import FederatedRunConfig
from fintune.federated.deploy import write_flower_app
from fintune.federated.records import CONFIG_KEY, run_config
from fintune.federated.server import OUTPUT_KEY, Outcome, make_server_app
from tests.unit.federated.conftest import make_cfg


def _context(run_cfg=None):
    return Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_cfg or {})


def test_a_bad_validation_file_fails_the_server_and_is_handed_back(fed_model_dir, client_files, tmp_path):
    cfg = make_cfg(fed_model_dir, client_files)
    cfg = cfg.model_copy(
        update={"clients": [c.model_copy(update={"eval_data": str(client_files["bad"])}) for c in cfg.clients]}
    )
    outcome = Outcome()
    app = make_server_app(cfg, tmp_path / "out", outcome=outcome)
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: label"):
        app(grid=None, context=_context())  # type: ignore[arg-type]  # fails before it uses the grid
    assert outcome.error is not None and not outcome.finished and not (tmp_path / "out").exists()


def test_flower_app_folder_carries_the_run_for_the_deployment_runtime(fed_model_dir, client_files, tmp_path):
    cfg = make_cfg(fed_model_dir, client_files, "fedsa")
    path = write_flower_app(cfg, tmp_path / "out", tmp_path / "app")
    app = tomllib.loads(path.read_text())["tool"]["flwr"]["app"]
    assert app["components"] == {
        "serverapp": "fintune.federated.server:app",
        "clientapp": "fintune.federated.client:app",
    }
    assert app["config"][OUTPUT_KEY] == str((tmp_path / "out").resolve())
    back = run_config(None, _context(app["config"]))
    assert isinstance(back, FederatedRunConfig) and back.aggregation == "fedsa"
    assert back.client_llm("a").lora_skip_layers == 12 and "lora_skip_layers" not in back.llm.model_fields_set
    with pytest.raises(ValueError, match=CONFIG_KEY):
        run_config(None, _context())


def test_cli_writes_the_shipped_run_as_a_flower_app_with_overrides_and_trains_nothing(tmp_path, capsys):
    from fintune.cli.main import main

    out, folder = tmp_path / "out", tmp_path / "app"
    argv = ["llm", "federate", "--config", "configs/federated.yaml", "--run", "sentiment_clients",
            "--output", str(out), "--flower-app", str(folder), "rounds=5", "aggregation=fedavg"]  # fmt: skip
    assert main(argv) == 0
    app = tomllib.loads((folder / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    back = run_config(None, _context(app["config"]))
    assert (back.rounds, back.aggregation, [c.name for c in back.clients]) == (5, "fedavg", ["fpb", "tfns"])
    assert app["config"][OUTPUT_KEY] == str(out.resolve()) and not out.exists()
    assert capsys.readouterr().out == ""  # the hint goes to stderr
    assert main([*argv[:6], "--flower-app", str(folder)]) == 2  # no --output and none in the run
