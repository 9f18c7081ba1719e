"""The typed loader of what output folders record: fintune_run.json and fintune_export.json."""

import json
import logging
from typing import get_args

import pytest

from fintune.config import ConfigError, EmbedRunConfig, LLMRunConfig
from fintune.config.saved import (
    EXPORT_FILE,
    ONNX_MAX_SEQ_LENGTH,
    RUN_FILE,
    ExportInfo,
    read_embed_run,
    read_export,
    read_llm_run,
    write_export,
    write_run,
)
from fintune.config.schema import EmbedLoss, LLMMethod


@pytest.mark.parametrize(
    "config",
    [
        LLMRunConfig(method="dora", lora_r=4, system_prompt="Be brief."),  # peft_use_dora false is recorded too
        LLMRunConfig(quant_bits=4, tasks={"fpb": 1.0, "ner": 2.0}, mixing="weighted", report_to=["tensorboard"]),
        LLMRunConfig(method="rslora", peft_use_rslora=True, max_seq_length=1024),
    ],
)
def test_an_llm_run_reads_back_as_written(tmp_path, config):
    write_run(tmp_path, config)
    assert read_llm_run(tmp_path) == config


def test_an_embed_run_reads_back_as_written(tmp_path):
    config = EmbedRunConfig(loss="margin-ranking", scheduler="steplr", step_size=10, asymmetric=True, hard_negatives=1)
    write_run(tmp_path, config)
    assert read_embed_run(tmp_path) == config


def test_no_run_file_reads_as_none(tmp_path):
    assert read_llm_run(tmp_path) is None and read_export(tmp_path) is None


def test_missing_keys_take_the_schema_defaults_and_unknown_keys_are_dropped(tmp_path, caplog):
    (tmp_path / RUN_FILE).write_text(json.dumps({"base_model": "x", "quant_bits": 8, "from_the_future": 1}))
    with caplog.at_level(logging.WARNING):
        run = read_llm_run(tmp_path)
    assert run is not None and (run.base_model, run.quant_bits) == ("x", 8)
    assert run.max_seq_length == LLMRunConfig().max_seq_length == 512
    assert run.system_prompt == LLMRunConfig().system_prompt
    assert "from_the_future" in caplog.text


def test_a_folder_of_the_other_pipeline_or_a_bad_value_names_the_file(tmp_path):
    write_run(tmp_path, EmbedRunConfig())
    with pytest.raises(ConfigError, match="records a 'embed' run, not 'llm'"):
        read_llm_run(tmp_path)
    (tmp_path / RUN_FILE).write_text(json.dumps({"pipeline": "llm", "lora_r": 0}, indent=2))
    with pytest.raises(ConfigError) as err:
        read_llm_run(tmp_path)
    assert f"{tmp_path / RUN_FILE}:3: lora_r" in str(err.value)


def test_contradictions_are_still_refused_in_a_recorded_run(tmp_path):
    (tmp_path / RUN_FILE).write_text(json.dumps({"method": "qlora", "quant_bits": 16}))
    with pytest.raises(ConfigError, match="qlora"):
        read_llm_run(tmp_path)


def test_export_info_round_trips_and_fills_a_missing_length(tmp_path):
    info = ExportInfo(source_model="minilm", quantize="int8", dimension=384, max_seq_length=256, opset=17)
    write_export(tmp_path, info)
    assert read_export(tmp_path) == info
    (tmp_path / EXPORT_FILE).write_text(json.dumps({"format": "onnx", "source_model": "m", "dimension": 8, "x": 1}))
    assert read_export(tmp_path).max_seq_length == ONNX_MAX_SEQ_LENGTH  # older exports: null or absent
    (tmp_path / EXPORT_FILE).write_text(json.dumps({"format": "tflite", "source_model": "m", "dimension": 8}))
    with pytest.raises(ConfigError, match="format"):
        read_export(tmp_path)


def test_method_and_loss_names_have_one_source():
    from fintune.cli.main import build_parser
    from fintune.embed.losses import LOSS_SHAPES

    assert set(LOSS_SHAPES) == set(get_args(EmbedLoss))
    llm_train = build_parser().parse_args(["llm", "train", "--method", "dora"])
    embed_train = build_parser().parse_args(["embed", "train", "--loss", "cosent"])
    assert (llm_train.method, embed_train.loss) == ("dora", "cosent")
    actions = {
        a.dest: a.choices
        for p in _subparsers(build_parser(), ("llm", "train"), ("embed", "train"))
        for a in p._actions
        if a.dest in ("method", "loss")
    }
    assert actions == {"method": get_args(LLMMethod), "loss": get_args(EmbedLoss)}


def _subparsers(parser, *paths):
    for path in paths:
        node = parser
        for name in path:
            sub = next(a for a in node._actions if a.__class__.__name__ == "_SubParsersAction")
            node = sub.choices[name]
        yield node
