"""Evaluate tab: chart earlier metrics (base vs tuned per metric), a classification run's confusion matrix,
`fintune embed eval` / `embed compare` run from the page (the CLI's library calls: the page shows the CLI's
numbers), and the comparison's queries whose first relevant passage moved up or down most."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from fintune.data.tasks import TASKS
from fintune.errors import UsageError

# Scores on a 0..1 scale worth a bar; counts, sizes and speeds would dwarf them on one axis.
SKIPPED = ("queries", "corpus_size", "examples", "records", "truncated", "latency", "per_s", "tokens", "unparsed")
COLUMNS = ["metric", "model", "value"]
MOVED_COLUMNS = ["direction", "query", "base rank", "tuned rank", "delta"]
NOT_FOUND_RANK = 101  # fintune.embed.compare: the relevant passage is not in the top 100


def metric_rows(metrics: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """(metric, model, value) rows of the 0..1 scores in a flat metrics dict."""
    return [
        {"metric": k, "model": model, "value": float(v)}
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and not any(s in k for s in SKIPPED)
    ]


def metrics_frame(path: str | Path) -> pd.DataFrame:
    """A metrics JSON as rows: a training run's `fintune_metrics.json` gives base (`before`) and tuned
    (`after`); an `embed eval` or `llm eval` output gives one series named after its model or file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object of metrics")
    rows: list[dict[str, Any]] = []
    if _is_comparison(data):  # an `embed compare` report: {"metrics": {name: {"base": b, "tuned": t, ...}}}
        rows = [
            {"metric": k, "model": f"{side}: {data[side]}", "value": float(v[side])}
            for side in ("base", "tuned")
            for k, v in data["metrics"].items()
            if isinstance(v, dict) and not any(s in k for s in SKIPPED)
        ]
    elif isinstance(data.get("before"), dict) and isinstance(data.get("after"), dict):
        rows = metric_rows(data["before"], "base") + metric_rows(data["after"], "tuned")
    else:
        rows = metric_rows(data, str(data.get("model") or data.get("adapter") or path.stem))
    if not rows:
        raise UsageError(f"{path}: no metrics found (expected scores, or 'before' and 'after' objects)")
    return pd.DataFrame(rows, columns=COLUMNS)


def _is_comparison(data: dict[str, Any]) -> bool:
    return isinstance(data.get("metrics"), dict) and "improved_examples" in data and "worsened_examples" in data


def moved_queries(comparison: dict[str, Any]) -> pd.DataFrame:
    """The queries of an `embed compare` report whose first relevant passage moved, up (improved) then down
    (worsened), each as far as it moved first: the rank in each model and delta = tuned - base (negative: up)."""
    rows = [
        {
            "direction": direction,
            "query": m["query"],
            "base rank": int(m["base_rank"]),
            "tuned rank": int(m["tuned_rank"]),
            "delta": int(m["tuned_rank"]) - int(m["base_rank"]),
        }
        for direction, key in (("up", "improved_examples"), ("down", "worsened_examples"))
        for m in comparison.get(key) or []
    ]
    return pd.DataFrame(rows, columns=MOVED_COLUMNS)


def load_comparison(path: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An `embed compare` JSON report (written beside its Markdown): its metrics as rows, and the moved queries."""
    if not path:
        raise UsageError("choose an embed compare report (the .json beside its --report Markdown)")
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not _is_comparison(data):
        raise UsageError(
            f"{path}: not an embed compare report (needs 'metrics', 'improved_examples', 'worsened_examples')"
        )
    return metrics_frame(path), moved_queries(data)


def load_files(files: list[str] | str | None) -> pd.DataFrame:
    """Rows of every loaded file, for one chart (several runs side by side)."""
    if not files:
        raise UsageError("choose one or more metrics JSON files")
    paths = [files] if isinstance(files, str) else files
    return pd.concat([metrics_frame(p) for p in paths], ignore_index=True)


def chart(frame: pd.DataFrame) -> Any:
    """Grouped bars: one group per metric, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the figure is rendered for the page
    import matplotlib.pyplot as plt

    table = frame.pivot_table(index="metric", columns="model", values="value", sort=False)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(table)), 3.6))
    table.plot.bar(ax=ax, rot=30)
    ax.set_ylabel("score")
    ax.legend(loc="lower right")
    fig.tight_layout()
    plt.close(fig)  # gradio renders the figure object; pyplot's registry must not keep it alive
    return fig


def confusion(predictions: str | None) -> pd.DataFrame:
    """Gold (rows) by predicted label (columns) from `llm eval --predictions` JSONL of a classification task."""
    if not predictions:
        raise UsageError("choose a predictions JSONL (llm eval --predictions)")
    pairs = []
    for line_no, line in enumerate(Path(predictions).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{predictions}:{line_no}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or "gold" not in row or "predicted" not in row:
            raise UsageError(f"{predictions}:{line_no}: needs 'gold' and 'predicted' (a classification task)")
        pairs.append((str(row["gold"]), str(row["predicted"]) or "(no label)"))
    matrix = pd.crosstab(
        pd.Series([g for g, _ in pairs], name="gold"), pd.Series([p for _, p in pairs], name="predicted")
    )
    return matrix.reset_index()


def run_embed_eval(model: str, data: str, split: str) -> pd.DataFrame:
    """`fintune embed eval --model M --data D --split S`: the same library calls, so the same numbers."""
    from fintune.data.beir import load_beir
    from fintune.embed.evaluate import evaluate_retrieval
    from fintune.embed.model import load_embedder

    if not model.strip() or not data.strip():
        raise UsageError("give a model and a BEIR data folder")
    beir = load_beir(data.strip(), split.strip() or "dev")
    metrics = evaluate_retrieval(load_embedder(model.strip()), beir).metrics
    return pd.DataFrame(metric_rows(metrics, model.strip()), columns=COLUMNS)


def run_embed_compare(base: str, tuned: str, data: str, split: str, examples: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`fintune embed compare` (its library calls, so its numbers): both models' metrics as rows, and the
    queries that moved most, `examples` per direction (the CLI's --examples)."""
    from fintune.data.beir import load_beir
    from fintune.embed.compare import compare_results
    from fintune.embed.evaluate import evaluate_retrieval
    from fintune.embed.model import load_embedder

    if not base.strip() or not tuned.strip() or not data.strip():
        raise UsageError("give a base model, a tuned model and a BEIR data folder")
    beir = load_beir(data.strip(), split.strip() or "dev")
    base_result = evaluate_retrieval(load_embedder(base.strip()), beir)
    tuned_result = evaluate_retrieval(load_embedder(tuned.strip()), beir)
    report = compare_results(base.strip(), tuned.strip(), beir, base_result, tuned_result, int(examples or 5))
    rows = metric_rows(report.base, f"base: {base.strip()}") + metric_rows(report.tuned, f"tuned: {tuned.strip()}")
    return pd.DataFrame(rows, columns=COLUMNS), moved_queries(report.to_json())


def run_llm_eval(model: str, adapter: str, task: str, data: str, limit: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`fintune llm eval` itself (its parser and command, in this process): the metrics as rows, and the
    confusion matrix of its predictions for a classification task (else an empty table)."""
    import argparse
    import tempfile

    from fintune.cli import llm as llm_cli  # its own parser: fintune.cli.main imports this UI

    with tempfile.TemporaryDirectory(prefix="fintune-ui-llm-eval-") as tmp:
        out, predictions = Path(tmp) / "metrics.json", Path(tmp) / "predictions.jsonl"
        argv = ["llm", "eval", "--task", task, "--output", str(out), "--predictions", str(predictions)]
        for flag, value in (("--model", model), ("--adapter", adapter), ("--data", data)):
            argv += [flag, value.strip()] if value.strip() else []
        argv += ["--limit", str(int(limit))] if limit else []
        parser = argparse.ArgumentParser(prog="fintune")
        llm_cli.add_parser(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        args.func(args)
        name = Path(adapter.strip()).name if adapter.strip() else model.strip() or "base"
        rows = metric_rows(json.loads(out.read_text(encoding="utf-8")), name)
        labelled = '"predicted"' in predictions.read_text(encoding="utf-8")
        matrix = confusion(str(predictions)) if labelled else pd.DataFrame()
    return pd.DataFrame(rows, columns=COLUMNS), matrix


def build_tab() -> None:
    """The Evaluate tab's components and events (inside a `gr.Blocks`)."""
    gr.Markdown("Load `fintune_metrics.json` of a run (base vs tuned) or `embed eval` / `llm eval` outputs.")
    files = gr.File(label="metrics JSON files", file_count="multiple", file_types=[".json"], type="filepath")
    load = gr.Button("Chart")
    with gr.Row():
        model = gr.Textbox("minilm", label="embedding model (alias or folder)")
        data = gr.Textbox(str(TASKS["financial_qa_10k"].path("dev")), label="BEIR folder (default: the shared 10-K QA)")
        split = gr.Textbox("dev", label="split")
        run = gr.Button("Run embed eval", variant="primary")
    table = gr.Dataframe(headers=COLUMNS, label="metrics")
    plot = gr.Plot(label="base vs tuned per metric")

    with gr.Accordion("Embedding comparison: run embed compare, or load its report; the queries that moved"):
        with gr.Row():
            base_model = gr.Textbox("minilm", label="base model")
            tuned_model = gr.Textbox(label="tuned model folder")
            examples = gr.Number(5, precision=0, label="queries per direction")
            compare = gr.Button("Run embed compare")
        report = gr.File(label="or load: embed compare report (.json)", file_types=[".json"], type="filepath")
        moved = gr.Dataframe(
            headers=MOVED_COLUMNS,
            label=f"queries that moved: rank of the first relevant passage ({NOT_FOUND_RANK}: not in the top 100), "
            "delta = tuned - base (negative: moved up)",
        )

    with gr.Accordion("LLM: run llm eval, or load its predictions for a confusion matrix", open=False):
        with gr.Row():
            llm_model = gr.Textbox(label="base model (empty: the adapter's base, else smollm2)")
            llm_adapter = gr.Textbox(label="adapter folder (empty: the base model)")
            llm_task = gr.Dropdown(sorted(TASKS), value="fpb", label="task")
        with gr.Row():
            llm_data = gr.Textbox(label="records file (empty: the task's dev split)")
            llm_limit = gr.Number(50, precision=0, label="N records, a seeded sample (0: all)")
            llm_run = gr.Button("Run llm eval")
        predictions = gr.File(label="or load: llm eval --predictions JSONL", type="filepath")
        matrix = gr.Dataframe(label="confusion matrix: gold (rows) x predicted (columns)")
        predictions.change(confusion, predictions, matrix, api_name="confusion")

    load.click(load_files, files, table, api_name="load_metrics").then(chart, table, plot)
    run.click(run_embed_eval, [model, data, split], table, api_name="embed_eval").then(chart, table, plot)
    compare_inputs = [base_model, tuned_model, data, split, examples]
    compare.click(run_embed_compare, compare_inputs, [table, moved], api_name="embed_compare").then(chart, table, plot)
    report.change(load_comparison, report, [table, moved], api_name="load_comparison").then(chart, table, plot)
    llm_inputs = [llm_model, llm_adapter, llm_task, llm_data, llm_limit]
    llm_run.click(run_llm_eval, llm_inputs, [table, matrix], api_name="llm_eval").then(chart, table, plot)
