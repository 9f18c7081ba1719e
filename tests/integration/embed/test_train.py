"""Embedding training for real: MiniLM on a slice of the 10-K QA data, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fintune.config.schema import EmbedRunConfig
from fintune.embed.train import train_embedder, work_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(beir_slice, tmp_path_factory):
    output = tmp_path_factory.mktemp("embed") / "tuned"
    config = EmbedRunConfig(
        data=str(beir_slice),
        output=str(output),
        batch_size=16,
        learning_rate=5e-5,
        hard_negatives=1,
        num_fixed_layers=2,
    )
    return config, train_embedder(config)


def test_training_writes_a_complete_sentence_transformers_folder(trained):
    config, _ = trained
    out = Path(config.output)
    assert (out / "modules.json").is_file() and (out / "model.safetensors").is_file()
    run = json.loads((out / "fintune_run.json").read_text())
    assert run["loss"] == "mnrl" and run["hard_negatives"] == 1
    card = (out / "README.md").read_text()
    assert "## fintune run" in card and "| ndcg@10 |" in card and "hard negative" in card
    assert not work_dir(out).exists()  # checkpoints are cleaned once the model is in place
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_tuned_model_is_scored_before_and_after_and_does_not_collapse(trained):
    _, result = trained
    assert result.before and result.after
    assert result.after["ndcg@10"] > 0.5  # training on 160 pairs must not destroy the base model
    assert result.before["queries"] == result.after["queries"] == 40
    assert result.pairs_per_s > 0


def test_existing_output_is_refused_without_overwrite(trained):
    config, _ = trained
    with pytest.raises(FileExistsError, match="--overwrite"):
        train_embedder(config)


def test_bad_training_file_leaves_nothing_behind(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"text1": "a", "text2": "b", "score": 0.5}\n{"text1": "a", "text2": "b", "score": 7}\n')
    output = tmp_path / "out"
    with pytest.raises(ValueError, match=r"pairs.jsonl:2: score: score 7.0 outside 0..1"):
        train_embedder(EmbedRunConfig(data=str(data), output=str(output), loss="cosent"))
    assert not output.exists() and not work_dir(output).exists()


def test_resume_continues_from_the_last_checkpoint(beir_slice, tmp_path):
    output = tmp_path / "resumed"
    config = EmbedRunConfig(data=str(beir_slice), output=str(output), batch_size=16, epochs=1)

    class Stop(Exception):
        pass

    from transformers import TrainerCallback

    class KillAfterCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise Stop("killed after a checkpoint")

    import fintune.embed.train as train_module

    original = train_module._training_args

    def save_often(*args, **kwargs):
        out = original(*args, **kwargs)
        out.save_steps = 4
        return out

    train_module._training_args = save_often
    try:
        with pytest.raises(Stop):
            train_embedder(config, evaluate=False, callbacks=[KillAfterCheckpoint()])
        assert (work_dir(output) / "checkpoint-4").is_dir() and not output.exists()
        result = train_embedder(config, evaluate=False)
    finally:
        train_module._training_args = original
    assert output.is_dir() and result.examples == 160
    state = json.loads((output / "fintune_metrics.json").read_text())
    assert state["train_seconds"] > 0


def test_cli_train_then_compare_writes_reports(beir_slice, tmp_path):
    out = tmp_path / "cli_model"
    run = [
        sys.executable,
        "-m",
        "fintune",
        "embed",
        "train",
        "--data",
        str(beir_slice),
        "--output",
        str(out),
        "--batch-size",
        "16",
        "--no-eval",
        "max_seq_length=128",
    ]
    subprocess.run(run, check=True, capture_output=True)
    assert json.loads((out / "fintune_run.json").read_text())["max_seq_length"] == 128
    report = tmp_path / "report.md"
    compare = [
        sys.executable,
        "-m",
        "fintune",
        "embed",
        "compare",
        "--tuned",
        str(out),
        "--data",
        str(beir_slice),
        "--report",
        str(report),
    ]
    subprocess.run(compare, check=True, capture_output=True)
    payload = json.loads(report.with_suffix(".json").read_text())
    assert payload["queries"] == 40 and set(payload["metrics"]) >= {"ndcg@10", "recall@100", "query_latency_ms_p50"}
    metric = payload["metrics"]["ndcg@10"]
    assert metric["change"] == pytest.approx(metric["tuned"] - metric["base"])
    assert "## Where the tuned model ranks the right passage higher" in report.read_text()
