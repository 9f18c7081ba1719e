import json
from pathlib import Path

import pytest

from fintune.config import ConfigError, EmbedRunConfig, LLMRunConfig, load_run, parse_overrides, validate_file

REPO = Path(__file__).resolve().parents[3]

FINLORA_ENTRY = {
    "sentiment_llama_3_1_8b_8bits_r8": {
        "base_model": "smollm2",
        "dataset_path": "../data/train/finlora_sentiment_train.jsonl",
        "lora_r": 8,
        "quant_bits": 8,
        "learning_rate": 0.0001,
        "num_epochs": 4,
        "batch_size": 8,
        "gradient_accumulation_steps": 2,
    }
}


def test_finlora_entries_load_as_written(tmp_path):
    path = tmp_path / "finetune_configs.json"
    path.write_text(json.dumps(FINLORA_ENTRY))
    run = load_run(path, "sentiment_llama_3_1_8b_8bits_r8")
    assert isinstance(run, LLMRunConfig)
    assert (run.lora_r, run.quant_bits, run.num_epochs, run.gradient_accumulation_steps) == (8, 8, 4, 2)
    assert run.resolved_method == "qlora" and run.resolved_alpha == 16


def test_overrides_parse_types_and_nest():
    assert parse_overrides(["lr=1e-4", "lora_r=16", "peft_use_dora=true", "a.b=x", "t=[q,v]"]) == {
        "lr": 1e-4,
        "lora_r": 16,
        "peft_use_dora": True,
        "a": {"b": "x"},
        "t": ["q", "v"],
    }
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["lora_r"])


def test_overrides_beat_the_file_which_beats_defaults(tmp_path):
    path = tmp_path / "runs.yaml"
    path.write_text("defaults:\n  batch_size: 4\nr1:\n  pipeline: llm\n  lora_r: 16\n  learning_rate: 3.0e-4\n")
    run = load_run(path, "r1", parse_overrides(["learning_rate=5e-5"]))
    assert (run.batch_size, run.lora_r, run.learning_rate, run.num_epochs) == (4, 16, 5e-5, 1.0)


def test_aliases_are_accepted():
    run = load_run(None, None, {"model": "smollm2", "epochs": 2, "lr": 1e-3, "r": 4}, pipeline="llm")
    assert (run.base_model, run.num_epochs, run.learning_rate, run.lora_r) == ("smollm2", 2, 1e-3, 4)


def test_validate_reports_every_problem_with_line_and_suggestion(tmp_path):
    path = tmp_path / "runs.yaml"
    path.write_text(
        "ok:\n  pipeline: llm\nbad:\n  pipeline: llm\n  lora_rr: 8\n  quant_bits: 3\n  learning_rate: fast\n"
    )
    names, problems = validate_file(path)
    assert names == ["ok", "bad"]
    text = sorted(str(p) for p in problems)
    assert text == [
        f"{path}:5: bad.lora_rr: unknown key 'lora_rr' (did you mean 'lora_r'?)",
        f"{path}:6: bad.quant_bits: Input should be 4, 8 or 16 (got 3)",
        f"{path}:7: bad.learning_rate: Input should be a valid number, unable to parse string as a number (got 'fast')",
    ]


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ({"pipeline": "llm", "method": "qlora"}, "method 'qlora' needs quant_bits 4 or 8"),
        ({"pipeline": "llm", "method": "lora", "peft_use_dora": True}, "contradicts peft_use_dora: true"),
        ({"pipeline": "llm", "method": "dora", "peft_use_dora": False}, "contradicts peft_use_dora: false"),
        ({"pipeline": "llm", "dora_magnitude_lr": 1e-3}, "dora_magnitude_lr needs DoRA"),
        ({"pipeline": "embed", "scheduler": "steplr"}, "needs step_size"),
        ({"pipeline": "embed", "eval_steps": 10, "eval_fraction": 0.5}, "both set"),
        ({"pipeline": "embed", "query_learning_rate": 1e-5}, "needs asymmetric: true"),
        ({"pipeline": "embed", "domain_adaptation_weight": 0.3}, "needs domain_data"),
    ],
)
def test_contradictory_options_are_refused(run, message):
    with pytest.raises(ConfigError, match=message):
        load_run(None, None, run)


def test_contradiction_points_at_the_option(tmp_path):
    path = tmp_path / "runs.yaml"
    path.write_text("r:\n  pipeline: embed\n  loss: mnrl\n  scheduler: steplr\n")
    (problem,) = validate_file(path)[1]
    assert (problem.line, problem.where) == (4, "r.scheduler")


def test_pipeline_is_inferred_or_asked_for(tmp_path):
    assert isinstance(load_run(None, None, {"lora_r": 4}), LLMRunConfig)
    assert isinstance(load_run(None, None, {"loss": "cosent"}), EmbedRunConfig)
    with pytest.raises(ConfigError, match="set pipeline: embed or llm"):
        load_run(None, None, {"batch_size": 4})


def test_unknown_run_suggests_a_name(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(FINLORA_ENTRY))
    with pytest.raises(ConfigError, match="did you mean 'sentiment_llama_3_1_8b_8bits_r8'"):
        load_run(path, "sentiment_llama_3_1_8b_8bits_r9")


def test_bad_yaml_names_its_line(tmp_path):
    path = tmp_path / "runs.yaml"
    path.write_text("r:\n  lora_r: [1,\n  x: }\n")
    (problem,) = validate_file(path)[1]
    assert problem.line == 3 and "bad YAML" in problem.message


@pytest.mark.parametrize("name", ["embed.yaml", "llm.json"])
def test_shipped_configs_are_valid(name):
    names, problems = validate_file(REPO / "configs" / name)
    assert names and problems == []


def test_an_override_by_alias_beats_the_file_by_name(tmp_path):
    path = tmp_path / "runs.yaml"
    path.write_text("r:\n  pipeline: llm\n  learning_rate: 3.0e-4\n  num_epochs: 3\n")
    run = load_run(path, "r", parse_overrides(["lr=1e-5", "epochs=2"]))
    assert (run.learning_rate, run.num_epochs) == (1e-5, 2)
