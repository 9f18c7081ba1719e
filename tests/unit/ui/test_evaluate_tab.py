"""Evaluate tab: metrics files become (metric, model, value) rows for the chart."""

from __future__ import annotations

import json

import pytest

from fintune.errors import UsageError
from fintune.ui.evaluate import chart, confusion, load_files, metrics_frame


def test_a_training_run_gives_base_and_tuned_bars_without_counts_or_speeds(tmp_path) -> None:
    path = tmp_path / "fintune_metrics.json"
    before = {"ndcg@10": 0.5, "mrr@10": 0.4, "queries": 5, "query_latency_ms_p50": 200.0}
    after = {"ndcg@10": 0.75, "mrr@10": 0.6, "queries": 5, "corpus_docs_per_s": 60.0}
    path.write_text(json.dumps({"train_seconds": 7.0, "before": before, "after": after}))
    frame = metrics_frame(path)
    assert sorted(map(tuple, frame.values.tolist())) == [
        ("mrr@10", "base", 0.4),
        ("mrr@10", "tuned", 0.6),
        ("ndcg@10", "base", 0.5),
        ("ndcg@10", "tuned", 0.75),
    ]


def test_eval_outputs_are_series_named_by_model_and_chart_as_grouped_bars(tmp_path) -> None:
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"model": "minilm", "data": "x", "ndcg@10": 0.7}))
    b = tmp_path / "fpb_eval.json"
    b.write_text(json.dumps({"accuracy": 0.85, "f1_weighted": 0.8, "examples": 362, "latency_ms_p50": 90.0}))
    frame = load_files([str(a), str(b)])
    assert set(frame["model"]) == {"minilm", "fpb_eval"}
    assert len(frame) == 3
    figure = chart(frame)
    bars = [p for p in figure.axes[0].patches]
    assert len(bars) == 3 * 2  # 3 metrics x 2 models (a missing pair is an empty bar)


def test_bad_json_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{\n  "ndcg@10": 0.5,\n  oops\n}')
    with pytest.raises(UsageError, match=r"m\.json:3: not valid JSON"):
        metrics_frame(path)
    empty = tmp_path / "e.json"
    empty.write_text('{"notes": []}')
    with pytest.raises(UsageError, match="no metrics found"):
        metrics_frame(empty)


def test_the_confusion_matrix_counts_gold_against_predicted(tmp_path) -> None:
    rows = [("positive", "positive"), ("positive", "neutral"), ("negative", "negative"), ("neutral", "")]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"gold": g, "predicted": p, "answer": "..."}) + "\n" for g, p in rows))
    matrix = confusion(str(path)).set_index("gold")
    assert matrix.loc["positive", "positive"] == 1 and matrix.loc["positive", "neutral"] == 1
    assert matrix.loc["negative", "negative"] == 1 and matrix.loc["neutral", "(no label)"] == 1
    assert int(matrix.to_numpy().sum()) == 4
    path.write_text('{"gold": "x", "predicted": "x"}\n{"answer": "free text"}\n')
    with pytest.raises(UsageError, match=r"p\.jsonl:2: needs 'gold' and 'predicted'"):
        confusion(str(path))


def test_embed_eval_from_the_page_equals_the_cli(tmp_path, tiny_bert_dir) -> None:
    from fintune.cli.main import main
    from fintune.ui.evaluate import run_embed_eval
    from tests.unit.ui.conftest import tiny_beir_folder

    beir = tiny_beir_folder(tmp_path / "beir")
    out = tmp_path / "cli.json"
    assert main(["embed", "eval", "--model", str(tiny_bert_dir), "--data", str(beir), "--output", str(out)]) == 0
    cli = json.loads(out.read_text())
    page = run_embed_eval(str(tiny_bert_dir), str(beir), "dev").set_index("metric")["value"]
    assert {"ndcg@10", "mrr@10", "recall@10"} <= set(page.index)
    assert {k: page[k] for k in page.index} == pytest.approx({k: cli[k] for k in page.index}, abs=1e-9)


def test_llm_eval_from_the_page_equals_the_cli_and_gives_a_confusion_matrix(tmp_path) -> None:
    from fintune.cli.main import main
    from fintune.ui.evaluate import run_llm_eval
    from tests.conftest import write_jsonl
    from tests.unit.llm.conftest import make_tiny_llm

    base = str(make_tiny_llm(tmp_path / "tiny_llm"))
    rows = [
        {"text": "profit rose", "label": "positive"},
        {"text": "sales fell", "label": "negative"},
        {"text": "sales were flat", "label": "neutral"},
    ]
    data = write_jsonl(tmp_path / "fpb.jsonl", rows)
    out = tmp_path / "cli.json"
    assert main(["llm", "eval", "--model", base, "--task", "fpb", "--data", str(data), "--output", str(out)]) == 0
    cli = json.loads(out.read_text())
    table, matrix = run_llm_eval(base, "", "fpb", str(data), 0)
    page = table.set_index("metric")["value"]
    assert {"accuracy", "f1_weighted", "no_label_rate"} <= set(page.index)
    assert {k: page[k] for k in page.index} == {k: cli[k] for k in page.index}
    assert sorted(matrix["gold"]) == ["negative", "neutral", "positive"]
    assert int(matrix.drop(columns="gold").to_numpy().sum()) == 3
