"""Train flags derived from the run-config models: names, aliases, types, choices, precedence, README lines."""

import shlex
from pathlib import Path

import pytest

from fintune.cli.main import build_parser
from fintune.cli.runs import flag_kind, run_config_from_args
from fintune.config import EmbedRunConfig, LLMRunConfig

REPO = Path(__file__).resolve().parents[3]


def parse(line: str, pipeline: str):
    """The run config a command line would train with (parsing only: nothing is loaded or trained)."""
    return run_config_from_args(build_parser().parse_args(shlex.split(line)), pipeline)


def test_the_historical_llm_flags_still_work():
    cfg = parse(
        "llm train --task fpb --data mine.jsonl --model tiny --output out --method dora --epochs 2 "
        "--batch-size 4 --lr 0.01 --max-steps 3 --debug",
        "llm",
    )
    got = (cfg.task, cfg.dataset_path, cfg.base_model, cfg.output, cfg.method, cfg.num_epochs)
    assert got == ("fpb", "mine.jsonl", "tiny", "out", "dora", 2.0)
    assert (cfg.batch_size, cfg.learning_rate, cfg.max_steps, cfg.debug) == (4, 0.01, 3, True)


def test_the_historical_embed_flags_still_work():
    cfg = parse("embed train --data d --model m --output o --loss cosent --epochs 2 --batch-size 8 --lr 1e-5", "embed")
    assert (cfg.data, cfg.model, cfg.output, cfg.loss, cfg.epochs, cfg.batch_size) == ("d", "m", "o", "cosent", 2, 8)
    assert cfg.learning_rate == 1e-5


def test_every_plain_field_is_a_flag_typed_by_its_annotation():
    cfg = parse(
        "llm train --lora-r 8 --rank 4 --quant-bits 4 --no-eval-each-epoch --report-to tensorboard --eval-path v.jsonl",
        "llm",
    )
    assert (cfg.lora_r, cfg.quant_bits, cfg.eval_each_epoch, cfg.report_to, cfg.eval_path) == (
        4,  # the later spelling of the same field wins, as argparse does
        4,
        False,
        ["tensorboard"],
        "v.jsonl",
    )
    only_in_config = {
        name
        for model in (LLMRunConfig, EmbedRunConfig)
        for name, info in model.model_fields.items()
        if flag_kind(info.annotation) is None
    }
    assert only_in_config == {"target_modules", "tasks", "task_loss_weights", "search_space"}


@pytest.mark.parametrize(
    "line",
    [
        "llm train --method lorax",
        "llm train --quant-bits 5",
        "llm train --lr fast",
        "embed train --loss hinge",
    ],
)
def test_bad_flag_values_stop_at_parsing(line, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(shlex.split(line))
    assert exit_.value.code == 2 and "invalid" in capsys.readouterr().err


def test_flags_beat_overrides_which_beat_the_file(tmp_path):
    runs = tmp_path / "runs.yaml"
    runs.write_text("r:\n  pipeline: llm\n  lora_r: 4\n  learning_rate: 1.0e-4\n  batch_size: 2\n")
    cfg = parse(f"llm train --config {runs} --run r lr=0.2 batch_size=3 --learning-rate 0.3", "llm")
    assert (cfg.lora_r, cfg.learning_rate, cfg.batch_size) == (4, 0.3, 3)


def test_a_flag_left_out_keeps_the_run_configs_value(tmp_path):
    runs = tmp_path / "runs.yaml"
    runs.write_text("r:\n  pipeline: llm\n  debug: true\n  eval_each_epoch: false\n")
    cfg = parse(f"llm train --config {runs} --run r", "llm")
    assert cfg.debug and not cfg.eval_each_epoch


@pytest.mark.parametrize(
    ("line", "pipeline", "check"),
    [
        ("llm train --task fpb --model smollm2 --output runs/fpb", "llm", {"task": "fpb", "output": "runs/fpb"}),
        (
            "llm train --config configs/llm.json --run sentiment_smollm2_4bits_r4 --output runs/q4 lora_r=8",
            "llm",
            {"quant_bits": 4, "lora_r": 8, "resolved_method": "qlora"},
        ),
        ("llm train --task fpb --output o --debug", "llm", {"debug": True}),
        (
            "embed train --data ../shared/data/retrieval/financial_qa_10k --output runs/minilm-10k",
            "embed",
            {"loss": "cached-mnrl", "batch_size": 128, "output": "runs/minilm-10k"},  # the default recipe
        ),
        (
            "embed tune --config configs/embed.yaml --run 10k_qa_search --output runs/best --trials 10 "
            "--study sqlite:///study.db",
            "embed",
            {"output": "runs/best"},
        ),
    ],
)
def test_readme_command_lines_parse(line, pipeline, check, monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = parse(line, pipeline)
    assert {key: getattr(cfg, key) for key in check} == check


@pytest.mark.parametrize("command", [["llm", "train"], ["embed", "train"], ["embed", "tune"]])
def test_help_lists_the_derived_flags(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "--lr" in out and "--batch-size" in out and "(default" in out
