"""Helpers shared by unit and integration tests: trainer callbacks that kill or watch a run, CLI runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from transformers import TrainerCallback

# Set by an in-process `main()` of another test; a child process must choose them itself.
MANAGED_ENV = ("FINTUNE_LOG_LEVEL", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY")


class Killed(Exception):
    pass


class KillAtStep(TrainerCallback):
    """Checkpoint at `step` (whatever save_steps says), then die as a killed process would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        raise Killed


class Steps(TrainerCallback):
    """The optimizer steps this run actually takes."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def run_cli(*args: object, log_level: str | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """`fintune ARGS` in a fresh process; fails the test on a non-zero exit, with the end of stderr."""
    env = {k: v for k, v in os.environ.items() if k not in MANAGED_ENV}
    level = ["--log-level", log_level] if log_level else []
    cmd = [sys.executable, "-m", "fintune", *level, *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def parse_jsonl(stdout: str) -> list[dict]:
    """Every line, the last one ended too: a stray line of text fails here."""
    assert stdout.endswith("\n"), stdout[-200:]
    return [json.loads(line) for line in stdout.split("\n")[:-1]]
