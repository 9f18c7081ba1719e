"""`train_llm` end to end on a tiny model: adapter folder, learned answers that stop by themselves, resume."""

import json

import pytest
from peft import PeftModel
from transformers import AutoModelForCausalLM, TrainerCallback

from fintune.config.schema import LLMRunConfig
from fintune.data.tasks import get_task
from fintune.llm.evaluate import evaluate_generation
from fintune.llm.model import load_causal_lm
from fintune.llm.train import train_llm, work_dir


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
    assert result.metrics["accuracy"] > 0.3  # a label is found in the answers (chance with no label: 0)


class _Stop(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise KeyboardInterrupt


def test_interrupted_run_resumes_from_its_checkpoint(tiny_llm_dir, fpb_file, tmp_path):
    out = tmp_path / "adapter"
    cfg = _cfg(tiny_llm_dir, fpb_file, max_steps=8, save_steps=4, eval_path=None)
    with pytest.raises(KeyboardInterrupt):
        train_llm(cfg, out, callbacks=[_Stop()])
    assert not out.exists()  # nothing half-written
    assert (work_dir(out) / "checkpoint-4").is_dir()
    result = train_llm(cfg, out)
    assert result.steps == 8
    steps = [h["step"] for h in result.history if "loss" in h]
    assert steps[0] == 5 or 4 not in steps  # the second run continued after step 4 instead of starting over
    assert out.is_dir() and not work_dir(out).exists()
