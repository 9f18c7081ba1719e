"""A request becomes a validated run config: problems with field paths, paths confined, output refused."""

from __future__ import annotations

import pytest

from fintune.config.files import ConfigError
from fintune.service.methods import EMBEDDING, LLM
from fintune.service.models import TaskCreate
from fintune.service.paths import PathRefused
from fintune.service.submission import build_config, problem_list


@pytest.fixture
def root(tmp_path):
    (tmp_path / "beir").mkdir()
    (tmp_path / "train.jsonl").write_text("{}\n")
    (tmp_path / "runs.yaml").write_text("short:\n  epochs: 2\n  batch_size: 4\n")
    return tmp_path


def request(**fields):
    return TaskCreate.model_validate({"kind": "embedding", "data": "beir", **fields})


def test_inline_options_with_service_max_steps(root):
    config, options = build_config(
        EMBEDDING, request(base_model="minilm", config={"epochs": 1, "max_steps": 10}), [root]
    )
    assert options == {"max_steps": 10}
    assert config["epochs"] == 1.0 and config["model"] == "minilm" and config["pipeline"] == "embed"
    assert config["data"] == str((root / "beir").resolve())
    assert config["output"] is None  # the worker sets it


def test_run_file_then_inline_overrides(root):
    config, _ = build_config(
        EMBEDDING, request(config={"run_file": "runs.yaml", "run": "short", "batch_size": 8}), [root]
    )
    assert (config["epochs"], config["batch_size"]) == (2.0, 8)


def test_llm_data_goes_to_dataset_path(root):
    body = TaskCreate.model_validate({"kind": "llm", "data": "train.jsonl", "config": {"max_steps": 3}})
    config, options = build_config(LLM, body, [root])
    assert config["dataset_path"] == str((root / "train.jsonl").resolve())
    assert config["max_steps"] == 3 and options == {}  # a field of the LLM config itself


def test_every_problem_with_its_field_path(root):
    body = request(config={"epochs": 0, "learning_rate": "fast", "epochz": 1})
    with pytest.raises(ConfigError) as caught:
        build_config(EMBEDDING, body, [root])
    details = problem_list(caught.value)
    assert [d["loc"] for d in details] == [
        ["body", "config", "epochs"],
        ["body", "config", "learning_rate"],
        ["body", "config", "epochz"],
    ]
    assert "did you mean 'epochs'" in details[2]["msg"]


@pytest.mark.parametrize("steps", [0, -1, "10", True])
def test_bad_max_steps(root, steps):
    with pytest.raises(ConfigError, match="max_steps: must be a whole number"):
        build_config(EMBEDDING, request(config={"max_steps": steps}), [root])


def test_output_is_chosen_by_the_server(root):
    with pytest.raises(PathRefused, match="chosen by the server"):
        build_config(EMBEDDING, request(config={"output": "/tmp/x"}), [root])
    (root / "out.yaml").write_text("r:\n  output: /tmp/x\n")
    with pytest.raises(PathRefused, match="chosen by the server"):
        build_config(EMBEDDING, request(config={"run_file": "out.yaml"}), [root])


def test_paths_in_options_and_run_files_are_confined(root, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "domain.txt").write_text("x\n")
    with pytest.raises(PathRefused, match=r"config\.domain_data: .* outside the data roots"):
        build_config(EMBEDDING, request(config={"domain_data": str(elsewhere / "domain.txt")}), [root])
    with pytest.raises(PathRefused, match=r"config\.run_file"):
        build_config(EMBEDDING, request(config={"run_file": "../runs.yaml"}), [root])
