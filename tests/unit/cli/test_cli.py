import json

from fintune.cli.main import main
from tests.conftest import write_jsonl


def test_inspect_good_file_prints_format_and_labels(tmp_path, capsys):
    path = write_jsonl(tmp_path / "fpb.jsonl", [{"id": str(i), "text": "t", "label": "positive"} for i in range(3)])
    assert main(["data", "inspect", str(path), "--task", "fpb"]) == 0
    out = capsys.readouterr().out
    assert "task:fpb" in out and "records: 3" in out and "positive 3 (100.0%)" in out


def test_inspect_corrupted_file_lists_every_bad_line_and_fails(tmp_path, capsys):
    path = tmp_path / "fpb.jsonl"
    rows = [{"text": "ok", "label": "neutral"}, {"text": "", "label": "neutral"}, {"text": "x", "label": "meh"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{oops\n")
    assert main(["data", "inspect", str(path), "--task", "fpb"]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: text: empty text" in err
    assert f"{path}:3: label: label 'meh' not in the label set" in err
    assert f"{path}:4: bad JSON" in err
    assert "3 invalid record(s)" in err


def test_inspect_caps_the_list(tmp_path, capsys):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "", "label": "x"} for _ in range(7)])
    assert main(["data", "inspect", str(path), "--max-errors", "2"]) == 1
    assert "... and 5 more" in capsys.readouterr().err


def test_validate_exit_codes(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("r:\n  pipeline: llm\n  lora_r: 8\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("r:\n  pipeline: llm\n  quant_bits: 2\n")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(bad), "r"]) == 1
    assert f"{bad}:3: r.quant_bits" in capsys.readouterr().err


def test_user_errors_print_one_message_not_a_traceback(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "missing.jsonl")]) == 2
    assert "error:" in capsys.readouterr().err


def test_models_list_shows_both_aliases(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "minilm" in out and "smollm2" in out


def test_validate_checks_federated_runs_beside_llm_runs(tmp_path, capsys):
    path = tmp_path / "runs.yaml"
    path.write_text(
        "fed:\n  pipeline: federated\n  clients:\n    - {name: a, task: fpb}\n  rounds: 0\n"
        "solo:\n  pipeline: llm\n  task: fpb\n"
    )
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "1 problem(s)" in err and "fed.rounds" in err and f"{path}:5" in err
    assert main(["validate", str(path), "solo"]) == 0
    path.write_text(path.read_text().replace("rounds: 0", "rounds: 2"))
    assert main(["validate", str(path)]) == 0
    assert "2 run(s) valid: fed, solo" in capsys.readouterr().out
