"""`fintune llm train|eval|generate|merge` end to end on the tiny model, and their bad-input errors."""

import json

import pytest

from fintune.cli.main import main


def test_train_eval_generate_merge(tiny_llm_dir, fpb_file, tmp_path, capsys):
    out = tmp_path / "adapter"
    args = ["llm", "train", "--task", "fpb", "--data", str(fpb_file), "--model", str(tiny_llm_dir)]
    assert main([*args, "--output", str(out), "--max-steps", "3", "eval_path=" + str(fpb_file), "lr=0.01"]) == 0
    assert "saved adapter" in capsys.readouterr().out
    run = json.loads((out / "fintune_run.json").read_text())
    assert run["learning_rate"] == 0.01 and run["max_steps"] == 3 and run["base_model"] == str(tiny_llm_dir)

    metrics, preds = tmp_path / "m.json", tmp_path / "p.jsonl"
    ev = ["llm", "eval", "--adapter", str(out), "--task", "fpb", "--data", str(fpb_file), "--limit", "5"]
    assert main([*ev, "--output", str(metrics), "--predictions", str(preds)]) == 0
    scored = json.loads(metrics.read_text())
    assert scored["examples"] == 5 and {"accuracy", "f1_weighted", "examples_per_s", "latency_ms_p50"} <= set(scored)
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(rows) == 5 and {"prompt", "answer", "gold", "predicted"} <= set(rows[0])

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "profit rose"}) + "\n" + json.dumps({"prompt": "sales fell"}) + "\n")
    answers = tmp_path / "answers.jsonl"
    gen = ["llm", "generate", "--adapter", str(out), "--file", str(prompts), "--max-new-tokens", "4"]
    assert main([*gen, "--output", str(answers)]) == 0
    assert [json.loads(line)["prompt"] for line in answers.read_text().splitlines()] == ["profit rose", "sales fell"]

    assert main(["llm", "merge", "--adapter", str(out), "--output", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "config.json").is_file()


def test_bad_inputs_get_one_clear_message(tiny_llm_dir, fpb_file, tmp_path, capsys):
    base = ["llm", "train", "--model", str(tiny_llm_dir), "--output", str(tmp_path / "o")]
    assert main([*base, "--task", "fbp"]) == 2
    assert "unknown task 'fbp' (did you mean 'fpb'?)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a choice the schema does not allow stops at parsing
        main([*base, "--task", "fpb", "--method", "lorax"])
    assert exit_.value.code == 2 and "--method" in capsys.readouterr().err
    assert main([*base, "--task", "fpb", "quant_bits=5"]) == 2
    assert "quant_bits" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "profit rose", "label": "great"}) + "\n")
    assert main([*base, "--task", "fpb", "--data", str(bad)]) == 2
    assert f"{bad}:1: label" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"text": "no prompt field"}\n')
    assert main(["llm", "generate", "--model", str(tiny_llm_dir), "--file", str(prompts)]) == 2
    assert f"{prompts}:1: prompt" in capsys.readouterr().err
