"""The worker's trainer callbacks: abort raises inside the loop, progress is reported, steps are capped."""

from __future__ import annotations

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from fintune.service.callbacks import StepLimit, TaskAborted, TaskCallback


@pytest.fixture
def args(tmp_path):
    return TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)


def test_abort_saves_the_steps_checkpoint_then_raises(args):
    flag = {"abort": False}
    reports: list[dict] = []
    callback = TaskCallback(lambda: flag["abort"], reports.append, min_interval_s=0)
    state, control = TrainerState(), TrainerControl()
    state.max_steps = 10
    callback.on_train_begin(args, state, control)
    state.global_step = 1
    callback.on_log(args, state, control, logs={"loss": 0.75, "learning_rate": 1e-5, "epoch": 0.1})
    callback.on_step_end(args, state, control)
    callback.on_save(args, state, control)  # an ordinary checkpoint: training goes on
    assert not control.should_save
    flag["abort"] = True
    state.global_step = 2
    callback.on_step_end(args, state, control)
    assert control.should_save  # the Trainer now writes checkpoint-2 ...
    with pytest.raises(TaskAborted, match="checkpoint of step 2 saved"):
        callback.on_save(args, state, control)  # ... and the run stops right after it
    assert reports[0] == {"step": 0, "total": 10}
    assert reports[1] == {"step": 1, "total": 10, "loss": 0.75}
    assert reports[-1] == {"step": 2, "total": 10, "loss": 0.75}


def test_abort_before_the_first_step_raises_at_once(args):
    with pytest.raises(TaskAborted):
        TaskCallback(lambda: True, lambda progress: None).on_train_begin(args, TrainerState(), TrainerControl())


def test_step_limit_sets_the_trainers_max_steps(args):
    assert args.max_steps == -1
    StepLimit(7).on_init_end(args, TrainerState(), TrainerControl())
    assert args.max_steps == 7
