"""Prompt settings at inference: the adapter's recorded run, else the recipe defaults, under explicit flags."""

import json

import pytest

from fintune.config import LLMRunConfig
from fintune.config.saved import write_run
from fintune.data.errors import DataError
from fintune.errors import UsageError
from fintune.llm.inference import inference_settings, prompt_examples


def test_an_adapter_is_prompted_as_it_was_trained(tmp_path):
    write_run(tmp_path, LLMRunConfig(system_prompt="Answer in one word.", max_seq_length=256, seed=7))
    settings = inference_settings(tmp_path)
    assert (settings.system_prompt, settings.max_length, settings.run.seed) == ("Answer in one word.", 256, 7)


def test_a_base_model_gets_the_recipe_defaults():
    settings = inference_settings(None)
    defaults = LLMRunConfig()
    assert (settings.system_prompt, settings.max_length) == (defaults.system_prompt, defaults.max_seq_length)
    assert settings.max_length == 512 and settings.run.base_model == "smollm2"


def test_explicit_choices_win_and_an_empty_system_prompt_means_none(tmp_path):
    write_run(tmp_path, LLMRunConfig(system_prompt="Answer in one word."))
    settings = inference_settings(tmp_path, system_prompt="", max_length=64)
    assert (settings.system_prompt, settings.max_length) == ("", 64)


def test_an_adapter_without_a_run_file_gets_the_defaults(tmp_path):
    assert inference_settings(tmp_path).max_length == LLMRunConfig().max_seq_length


def test_prompt_files_report_every_bad_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "ok"}) + "\n{oops\n" + json.dumps({"text": "x"}) + "\n")
    with pytest.raises(DataError) as err:
        prompt_examples(file=path)
    assert f"{path}:2: bad JSON" in str(err.value) and f"{path}:3: prompt" in str(err.value)
    lines = tmp_path / "p.txt"
    lines.write_text("first\n\nsecond\n")
    assert [e.prompt for e in prompt_examples(file=lines)] == ["first", "second"]
    assert [e.prompt for e in prompt_examples("one")] == ["one"]
    with pytest.raises(UsageError, match="one prompt or --file"):
        prompt_examples("one", lines)
