"""Two CPU processes under `accelerate launch --multi_gpu` (DDP on gloo), negatives gathered across them.

accelerate 1.x runs one process for `--cpu --num_processes 2` (its issue #2741: multi-CPU goes through
mpirun); `--multi_gpu` on a machine without GPUs starts the processes with torchrun on gloo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_accelerate_launch_two_cpu_processes(beir_slice, tmp_path):
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).with_name("accelerate")
    launch = [
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    train = ["embed", "train", "--data", str(beir_slice), "--output", str(out), "--batch-size", "8", "--no-eval"]
    train += ["--validation-group-by", "none"]  # all 160 train pairs are trained
    cmd = [str(accelerate), *launch, "-m", "fintune", *train]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "model.safetensors").is_file()
    metrics = json.loads((out / "fintune_metrics.json").read_text())
    # per-device batches of 8 on 2 processes: about 16 examples a step, so about 10 steps for 160 (one
    # process alone takes 20). "About": the sampler's batches can be short (repeated passages kept apart),
    # and accelerate evens out the processes' last batches (dropping or repeating up to one step's worth)
    assert metrics["processes"] == 2 and 8 <= metrics["steps"] <= 11, metrics
    assert abs(metrics["examples"] - 160) <= 16, metrics
