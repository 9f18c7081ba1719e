"""`train_llm` end to end on a tiny model: adapter folder, learned answers that stop by themselves, resume."""

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, TrainerCallback

from fintune.config.schema import LLMRunConfig
from fintune.data.tasks import get_task
from fintune.llm.evaluate import evaluate_generation
from fintune.llm.model import load_causal_lm
from fintune.llm.train import train_llm, work_dir
from tests.helpers import Steps
from tests.unit.llm.conftest import make_tiny_llm


@pytest.fixture(scope="module")
def tiny_llm_dir(tmp_path_factory):
    """The tiny Llama from a fixed seed (the shared fixture's weights depend on what ran before)."""
    torch.manual_seed(1)
    return make_tiny_llm(tmp_path_factory.mktemp("tiny_llm_seeded"))


def _cfg(model_dir, data, **kw):
    base = dict(
        base_model=str(model_dir),
        task="fpb",
        dataset_path=str(data),
        eval_path=str(data),
        learning_rate=2e-2,
        lora_r=8,
        batch_size=8,
        max_steps=40,
        logging_steps=5,
        warmup_ratio=0.0,
        scheduler="constant",
    )
    return LLMRunConfig(**(base | kw))


@pytest.fixture(scope="module")
def trained(tiny_llm_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("llm")
    data = folder / "fpb.jsonl"
    rows = [("profit rose", "positive"), ("sales fell", "negative"), ("sales were flat", "neutral")] * 8
    data.write_text("".join(json.dumps({"id": i, "text": t, "label": lab}) + "\n" for i, (t, lab) in enumerate(rows)))
    out = folder / "adapter"
    result = train_llm(_cfg(tiny_llm_dir, data), out)
    return result, out, data


def test_adapter_folder_is_complete_and_loadable(trained, tiny_llm_dir):
    _, out, _ = trained
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "fintune_run.json", "fintune_metrics.json"} <= names
    assert (
        json.loads((out / "tokenizer_config.json").read_text()).get("chat_template")
        or (out / "chat_template.jinja").exists()
    )
    metrics = json.loads((out / "fintune_metrics.json").read_text())
    assert metrics["steps"] == 40 and metrics["tokens"] > 0
    logged = {k for h in metrics["history"] for k in h}
    assert {"loss", "entropy", "mean_token_accuracy", "eval_fpb_loss"} <= logged
    assert not work_dir(out).exists()  # checkpoints are cleaned up once the adapter is in place
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llm_dir), str(out))
    assert model.peft_config["default"].r == 8


def test_training_lowers_the_answer_loss_and_answers_score(trained):
    result, out, data = trained
    evals = [h["eval_fpb_loss"] for h in result.history if "eval_fpb_loss" in h]
    assert evals[-1] < evals[0] - 0.5
    model, tokenizer = load_causal_lm(adapter=out)
    rows = [json.loads(line) for line in data.read_text().splitlines()][:6]
    result = evaluate_generation(model, tokenizer, get_task("fpb"), rows, batch_size=3, progress=False)
    assert len(result.predictions) == 6 and result.metrics["records"] == 6
    assert {p["gold"] for p in result.predictions} == {"positive", "negative", "neutral"}
    # Balanced classes: a constant answer scores 1/3 with one distinct label (what this base model does
    # on some seeds). Over seeds 0-4 the tuned model scores 2/3 or 1 with two or three labels.
    assert len({p["predicted"] for p in result.predictions}) >= 2
    assert result.metrics["accuracy"] >= 2 / 3


class _Stop(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt


def _resume_cfg(model_dir, data, save_steps=100):
    # 24 examples, 8 a step: 3 steps an epoch, so 8 steps cross two epoch boundaries. Dropout makes
    # every step draw from the RNG, so a resumed run only matches if the RNG state is restored too.
    return _cfg(
        model_dir, data, max_steps=8, save_steps=save_steps, logging_steps=1, lora_dropout=0.1, eval_each_epoch=False
    )


def _losses(result):
    return {h["step"]: h["loss"] for h in result.history if "loss" in h}


@pytest.fixture(scope="module")
def uninterrupted(tiny_llm_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    data = folder / "fpb.jsonl"
    rows = [("profit rose", "positive"), ("sales fell", "negative"), ("sales were flat", "neutral")] * 8
    data.write_text(
        "".join(json.dumps({"id": f"r{i}", "text": t, "label": lab}) + "\n" for i, (t, lab) in enumerate(rows))
    )
    out = folder / "adapter"
    return train_llm(_resume_cfg(tiny_llm_dir, data), out), load_file(out / "adapter_model.safetensors")


@pytest.mark.parametrize(
    "stop_at",
    [
        2,  # mid first epoch
        3,  # at an epoch boundary
        4,  # mid second epoch: the epoch's order is drawn again from seed + epoch
    ],
)
def test_interrupted_run_resumes_exactly_where_it_stopped(tiny_llm_dir, fpb_file, tmp_path, uninterrupted, stop_at):
    reference, reference_weights = uninterrupted
    out = tmp_path / "adapter"
    cfg = _resume_cfg(tiny_llm_dir, fpb_file, save_steps=stop_at)
    with pytest.raises(KeyboardInterrupt):
        train_llm(cfg, out, callbacks=[_Stop()])
    assert not out.exists()  # nothing half-written
    assert (work_dir(out) / f"checkpoint-{stop_at}").is_dir()
    taken = Steps()
    result = train_llm(cfg, out, callbacks=[taken])
    assert taken.steps == list(range(stop_at + 1, 9))  # continued after the checkpoint, did not start over
    assert result.steps == 8 and out.is_dir() and not work_dir(out).exists()
    # weights, optimizer, scheduler, data order and RNG restored: the same losses and adapter as one run
    expected = _losses(reference)
    assert sorted(expected) == list(range(1, 9))
    assert _losses(result) == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert result.tokens == reference.tokens
    weights = load_file(out / "adapter_model.safetensors")
    assert weights.keys() == reference_weights.keys()
    for name, value in reference_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=1e-6, atol=1e-7, msg=name)
