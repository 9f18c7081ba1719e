"""LoRA on the real SmolLM2 and real task data; DDP with two CPU processes; multi-task mixing on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from fintune.config.schema import LLMRunConfig
from fintune.data.tasks import get_task
from fintune.llm.data import evaluation_examples
from fintune.llm.evaluate import evaluate_generation
from fintune.llm.model import load_causal_lm
from fintune.llm.train import load_train_data, train_llm
from tests.unit.llm.conftest import make_tiny_llm

pytestmark = pytest.mark.slow  # the real shared data, SmolLM2, two-process training


def test_multi_task_mixing_on_real_files(shared_data):
    cfg = LLMRunConfig(tasks={"fpb": 1.0, "ner": 1.0}, mixing="balanced")
    data = load_train_data(cfg)
    counts = Counter(task for task, _ in data.train)
    assert abs(counts["fpb"] - counts["ner"]) <= 1 and sum(counts.values()) == sum(
        len(s.examples) for s in data.sets.values()
    )
    assert set(data.eval) == {"fpb", "ner"} and all(data.eval.values())
    single = load_train_data(LLMRunConfig(task="formula"))
    assert any("held-out" in note for note in single.notes)  # formula ships only a train split


def test_eval_of_a_train_only_task_scores_exactly_the_slice_training_held_out(shared_data):
    cfg = LLMRunConfig(task="formula", eval_limit=32, seed=7)
    data = load_train_data(cfg)
    held = evaluation_examples("formula", None, cfg.seed, cfg.eval_limit)
    trained = {e.prompt for _, e in data.train}
    assert [e.prompt for e in held.examples] == [e.prompt for e in data.eval["formula"]]
    assert len(held.examples) == 32 and not trained & {e.prompt for e in held.examples}
    other_seed = evaluation_examples("formula", None, 8, 32)
    assert {e.prompt for e in other_seed.examples} != {e.prompt for e in held.examples}


def test_smollm2_lora_debug_run_learns_and_scores(shared_data, fpb_dev_rows, tmp_path):
    out = tmp_path / "adapter"
    result = train_llm(LLMRunConfig(task="fpb", debug=True), out)
    evals = [h["eval_fpb_loss"] for h in result.history if "eval_fpb_loss" in h]
    assert len(evals) == 2 and evals[1] < evals[0]
    model, tokenizer = load_causal_lm(adapter=out)
    scored = evaluate_generation(model, tokenizer, get_task("fpb"), fpb_dev_rows[:12], batch_size=12)
    assert scored.metrics["examples"] == 12 and scored.metrics["no_label_rate"] < 0.5
    assert scored.metrics["mean_new_tokens"] < 4  # a label and the end of the turn, not max_new_tokens


def test_accelerate_launch_two_cpu_processes(tmp_path):
    model_dir = make_tiny_llm(tmp_path / "tiny", num_hidden_layers=2)
    data = tmp_path / "fpb.jsonl"
    rows = [("profit rose", "positive"), ("sales fell", "negative"), ("sales were flat", "neutral")] * 16
    data.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
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
    train = [
        "llm",
        "train",
        "--task",
        "fpb",
        "--data",
        str(data),
        "--model",
        str(model_dir),
        "--output",
        str(out),
        "--batch-size",
        "8",
        "--epochs",
        "1",
        f"eval_path={data}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(accelerate), *launch, "-m", "fintune", *train], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "fintune_metrics.json").read_text())
    # 48 examples, 8 per process and step: 3 steps on 2 processes (one process alone takes 6)
    assert (metrics["processes"], metrics["steps"]) == (2, 3)
    assert (out / "adapter_model.safetensors").is_file()
