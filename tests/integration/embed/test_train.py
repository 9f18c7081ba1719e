"""Embedding training for real: MiniLM on a slice of the 10-K QA data, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fintune.config.schema import EmbedRunConfig
from fintune.embed.train import train_embedder, work_dir
from fintune.models.resolve import resolve_model
from tests.helpers import KillAtStep, Killed, Steps

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
    assert run["loss"] == "cached-mnrl" and run["hard_negatives"] == 1  # the default loss
    card = (out / "README.md").read_text()
    assert "## fintune run" in card and "| ndcg@10 |" in card and "hard negative" in card
    assert not work_dir(out).exists()  # checkpoints are cleaned once the model is in place
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_tuned_model_is_scored_before_and_after_and_does_not_collapse(trained):
    _, result = trained
    assert result.before and result.after
    assert result.after["ndcg@10"] > 0.5  # training on 160 pairs must not destroy the base model
    # scored on the companies held out of training (grouped by ticker, the default), the same queries twice
    assert result.before["queries"] == result.after["queries"] > 0
    assert "grouped validation" in result.validation
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


def test_a_killed_run_resumes_from_its_checkpoint_to_the_uninterrupted_weights(beir_slice, tmp_path):
    def config(name):  # 160 pairs in batches of 16
        return EmbedRunConfig(
            data=str(beir_slice),
            output=str(tmp_path / name),
            batch_size=16,
            epochs=1,
            hard_negatives=0,
            validation_group_by="none",  # every train pair is trained: the step counts below hold
        )

    straight = train_embedder(config("straight"), evaluate=False)
    with pytest.raises(Killed):
        train_embedder(config("resumed"), evaluate=False, callbacks=[KillAtStep(4)])
    assert (work_dir(tmp_path / "resumed") / "checkpoint-4").is_dir() and not (tmp_path / "resumed").exists()
    taken = Steps()
    result = train_embedder(config("resumed"), evaluate=False, callbacks=[taken])
    # 10 batches of 16, and one more: repeated passages are kept out of each other's batches
    assert straight.steps == result.steps >= 10
    # continued, did not start over
    assert result.resumed_from_step == 4 and taken.steps == list(range(5, result.steps + 1))
    # counted batch by batch, across the kill for the resumed run: every pair trained once
    assert result.examples == straight.examples == 160
    metrics = json.loads((tmp_path / "resumed" / "fintune_metrics.json").read_text())
    assert metrics["examples"] == straight.examples and metrics["resumed_from_step"] == 4
    # weights, optimizer, scheduler, batch order and dropout RNG restored: the same model as one run
    base = load_file(resolve_model("minilm") / "model.safetensors")
    expected = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert expected.keys() == resumed.keys()
    assert any(not torch.equal(expected[k], base[k]) for k in expected if k in base)  # training moved them
    for name, value in expected.items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_every_training_pair_of_the_slice_is_trained_each_epoch(beir_slice):
    from fintune.embed.examples import load_training_data
    from fintune.embed.sampler import LengthBucketBatchSampler

    data = load_training_data(beir_slice, split="train")
    assert len(data.dataset) == 160
    sampler = LengthBucketBatchSampler(data.dataset, batch_size=16, drop_last=False, seed=42)
    trained = list(sampler)[: len(sampler)]  # the Trainer takes len(sampler) batches an epoch
    assert sorted(i for batch in trained for i in batch) == list(range(160))


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
