"""`fintune embed eval`."""

from __future__ import annotations

import argparse

from fintune.cli.output import console, fmt, write_json
from fintune.cli.runs import add_train_flags, run_config_from_args
from fintune.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    embed = sub.add_parser("embed", help="embedding models for financial retrieval")
    esub = embed.add_subparsers(dest="embed_cmd", required=True)
    ev = esub.add_parser("eval", help="retrieval metrics of a model on a BEIR split")
    ev.add_argument("--model", default="minilm", help="alias, folder or hub id (default minilm)")
    ev.add_argument("--data", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    ev.add_argument(
        "--style-check",
        action="store_true",
        help="also (or, without --data, only) score XBRL term -> explanation retrieval from the shared data: "
        "another style of text, to see what a fine-tune forgot",
    )
    ev.add_argument("--split", default="dev")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--skip-invalid", action="store_true", help="skip and count bad records instead of failing")
    ev.add_argument("--output", help="write the metrics as JSON here")
    ev.set_defaults(func=cmd_eval)

    cp = esub.add_parser("compare", help="base vs tuned on a BEIR split: Markdown and JSON report")
    cp.add_argument("--base", default="minilm", help="base model (default minilm)")
    cp.add_argument("--tuned", required=True, help="tuned model folder")
    cp.add_argument("--data", required=True, help="BEIR folder")
    cp.add_argument("--split", default="dev")
    cp.add_argument("--report", default="report.md", help="Markdown report; JSON is written beside it")
    cp.add_argument("--examples", type=int, default=5, help="example queries per direction")
    cp.add_argument("--skip-invalid", action="store_true", help="skip and count bad records instead of failing")
    cp.set_defaults(func=cmd_compare)

    tu = esub.add_parser("tune", help="hyperparameter search with Optuna over the run config's search_space")
    tu.add_argument("--trials", type=int, default=10, help="total trials in the study (resumed ones count)")
    tu.add_argument("--study", default="sqlite:///fintune-study.db", help="Optuna storage URL")
    tu.add_argument("--study-name", help="default: fintune-<output name>")
    tu.add_argument("--metric", default="ndcg@10", help="dev metric to maximise")
    add_train_flags(tu, "embed")  # --data: a BEIR folder with train and dev qrels; --output: the best model
    tu.set_defaults(func=cmd_tune)

    ex = esub.add_parser("export", help="ONNX export with pooling and normalisation in the graph (optionally int8)")
    ex.add_argument("--model", default="minilm", help="alias, folder or hub id (default minilm)")
    ex.add_argument("--format", default="onnx", choices=["onnx"])
    ex.add_argument("--quantize", choices=["int8"], help="int8 weights (dynamic quantisation, per channel)")
    ex.add_argument("--output", required=True, help="folder for the export (written atomically)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    ex.set_defaults(func=cmd_export)

    tr = esub.add_parser("train", help="fine-tune an embedding model (flags > --config run > defaults)")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    tr.add_argument("--no-resume", action="store_true", help="ignore checkpoints of an interrupted run")
    tr.add_argument("--no-eval", action="store_true", help="skip the before/after evaluation")
    tr.add_argument("--skip-invalid", action="store_true", help="skip and count bad records instead of failing")
    add_train_flags(tr, "embed")
    tr.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from fintune.embed.train import train_embedder

    config = run_config_from_args(args, "embed")
    result = train_embedder(
        config,
        resume=not args.no_resume,
        overwrite=args.overwrite,
        skip_invalid=args.skip_invalid,
        evaluate=not args.no_eval,
    )
    console.print(
        f"saved [bold]{result.output}[/] after {result.train_seconds:.0f} s of training "
        f"({result.pairs_per_s:.1f} examples/s)"
    )
    for note in result.notes:
        console.print(f"  note: {note}")
    from fintune.embed.card import metrics_table

    if result.before and result.after:
        console.print(f"base vs tuned on the {result.validation}:")
        console.print(metrics_table(result.before, result.after))
    if result.style_before and result.style_after:
        console.print("style check (XBRL term -> explanation):")
        console.print(metrics_table(result.style_before, result.style_after, ("ndcg@10", "mrr@10", "recall@10")))
    if result.wise_alpha is not None:
        console.print(f"WiSE-FT alpha {result.wise_alpha:g}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from fintune.embed.export import export_onnx

    result = export_onnx(args.model, args.output, quantize=args.quantize, overwrite=args.overwrite)
    console.print(
        f"exported [bold]{result.output}[/] ({result.quantize or 'fp32'}, {result.dimension} dims, "
        f"{result.size_mb:.0f} MB) in {result.seconds:.0f} s; min cosine to the PyTorch model "
        f"{result.min_cosine:.4f} on probe texts"
    )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from fintune.data.beir import load_beir
    from fintune.embed.compare import compare_results, write_report
    from fintune.embed.evaluate import evaluate_retrieval
    from fintune.embed.model import load_embedder

    data = load_beir(args.data, args.split, skip_invalid=args.skip_invalid)
    base = evaluate_retrieval(load_embedder(args.base), data)
    tuned = evaluate_retrieval(load_embedder(args.tuned), data)
    comparison = compare_results(args.base, args.tuned, data, base, tuned, args.examples)
    md, js = write_report(comparison, args.report)
    from fintune.embed.card import metrics_table

    console.print(metrics_table(comparison.base, comparison.tuned))
    console.print(f"report: {md} and {js}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from rich.table import Table

    from fintune.embed.tune import tune

    config = run_config_from_args(args, "embed")
    result = tune(config, args.trials, args.study, args.study_name, args.metric)
    keys = sorted({k for row in result.table for k in row} - {"trial", "state", "value"})
    table = Table(title=f"trials (validation {args.metric}, sampled corpus)")
    for column in ("trial", "state", "value", *keys):
        table.add_column(column)
    for row in result.table:
        table.add_row(*(fmt(row.get(c)) if row.get(c) is not None else "-" for c in ("trial", "state", "value", *keys)))
    console.print(table)
    console.print(f"best {args.metric} {result.best_value:.4f} with {result.best_params}; model: {result.best_model}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from fintune.data.beir import load_beir
    from fintune.embed.evaluate import evaluate_retrieval
    from fintune.embed.model import load_embedder

    if not args.data and not args.style_check:
        raise UsageError("give --data BEIR_DIR, --style-check or both")
    model = load_embedder(args.model)
    metrics: dict = {"model": args.model}
    if args.data:
        data = load_beir(args.data, args.split, skip_invalid=args.skip_invalid)
        result = evaluate_retrieval(model, data, batch_size=args.batch_size)
        metrics |= {"data": args.data, "split": args.split, **result.metrics}
        for key, value in result.metrics.items():
            console.print(f"{key:>22}  {fmt(value)}")
    if args.style_check:
        from fintune.embed.style_check import NAME, style_check_data

        style = style_check_data()
        if style is None:
            raise UsageError("the style check needs the shared data's instructions/xbrl_term/train.jsonl")
        styled = evaluate_retrieval(model, style, batch_size=args.batch_size).metrics
        metrics["style_check"] = {"data": NAME, **styled}
        console.print(f"{NAME} ({len(style.queries)} terms, {len(style.corpus)} explanations):")
        for key in ("ndcg@10", "mrr@10", "recall@10"):
            console.print(f"{key:>22}  {fmt(styled[key])}")
    if args.output:
        write_json(args.output, metrics)
    return 0
