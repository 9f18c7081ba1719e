"""What lets a lost worker cost little: extra checkpoints (`save_steps`), partial checkpoints dropped,
and heartbeat / stall timings a deployment (or a test) can shorten."""

from __future__ import annotations

import logging

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from fintune.cli.main import main
from fintune.config.files import ConfigError
from fintune.service.callbacks import SaveEvery
from fintune.service.methods import EMBEDDING
from fintune.service.models import TaskCreate
from fintune.service.submission import build_config, problem_list
from fintune.service.worker import _drop_partial_checkpoints


def test_save_every_asks_for_a_checkpoint_on_multiples_only(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    callback, state = SaveEvery(3), TrainerState()
    saved = []
    for step in range(1, 10):
        control = TrainerControl()
        state.global_step = step
        callback.on_step_end(args, state, control)
        if control.should_save:
            saved.append(step)
    assert saved == [3, 6, 9]


def embedding_request(root, **config):
    (root / "beir").mkdir(exist_ok=True)
    return build_config(EMBEDDING, TaskCreate.model_validate({"kind": "embedding", "data": "beir", "config": config}),
                        [root])  # fmt: skip


def test_save_steps_is_a_service_option_not_a_run_option(tmp_path):
    config, options = embedding_request(tmp_path, epochs=1, max_steps=10, save_steps=2)
    assert options == {"max_steps": 10, "save_steps": 2}
    assert "save_steps" not in config and "max_steps" not in config


def test_bad_step_options_are_all_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        embedding_request(tmp_path, max_steps=0, save_steps="2")
    problems = problem_list(caught.value)
    assert [p["loc"] for p in problems] == [["body", "config", "max_steps"], ["body", "config", "save_steps"]]
    assert "got '2'" in problems[1]["msg"]


def test_a_checkpoint_cut_short_is_dropped_and_the_complete_one_kept(tmp_path, caplog):
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-8").mkdir()
    (tmp_path / "checkpoint-8" / "model.safetensors").write_text("half")  # killed before trainer_state.json
    with caplog.at_level(logging.WARNING):
        _drop_partial_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]
    assert "checkpoint-8" in caplog.text
    _drop_partial_checkpoints(tmp_path / "missing")  # no work folder yet: nothing to do


@pytest.mark.parametrize(
    "timing", [["--stalled-s", "1"], ["--heartbeat-s", "0"], ["--heartbeat-s", "3", "--stalled-s", "5"]]
)
def test_a_stall_timeout_within_two_heartbeats_is_refused(timing, capsys):
    assert main(["worker", "--database", "postgresql://unused/db", *timing]) == 2
    assert "must be at least twice --heartbeat-s" in capsys.readouterr().err
