"""`fintune data inspect|tasks`."""

from __future__ import annotations

import argparse

from rich.table import Table

from fintune.cli.output import console, err_console
from fintune.data.inspect import inspect_path
from fintune.data.tasks import TASKS


def add_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="inspect data files and list the financial tasks")
    dsub = data.add_subparsers(dest="data_cmd", required=True)
    inspect = dsub.add_parser("inspect", help="detect the format, count rows, fields and labels, list bad records")
    inspect.add_argument("path", help="a JSONL/JSON/CSV/TSV/Parquet/CoNLL file or a BEIR folder")
    inspect.add_argument("--task", help=f"check records against a task's schema: {', '.join(TASKS)}")
    inspect.add_argument("--max-errors", type=int, default=50, help="bad records to list (default 50)")
    inspect.set_defaults(func=cmd_inspect)
    dsub.add_parser("tasks", help="the financial task registry").set_defaults(func=cmd_tasks)


def cmd_inspect(args: argparse.Namespace) -> int:
    report = inspect_path(args.path, task=args.task)
    console.print(
        f"[bold]{report.path}[/]  format: [cyan]{report.schema}[/]  records: {report.rows}"
        f"  valid: {report.rows - len(report.errors) if report.schema != 'beir' else report.rows}"
    )
    for name, count in report.extra.items():
        console.print(f"  {name}: {count}")
    if report.fields:
        console.print("  fields: " + ", ".join(f"{k} ({v})" for k, v in report.fields.most_common()))
    for name, counts in report.labels.items():
        total = sum(counts.values())
        shown = ", ".join(f"{label} {n} ({n / total:.1%})" for label, n in counts.most_common(12))
        console.print(f"  {name} distribution: {shown}")
    if report.errors:
        err_console.print(f"[red]{len(report.errors)} invalid record(s):[/]")
        for error in report.errors[: args.max_errors]:
            err_console.print(f"  {error}", markup=False, highlight=False)
        if len(report.errors) > args.max_errors:
            err_console.print(f"  ... and {len(report.errors) - args.max_errors} more")
        return 1
    console.print("[green]all records valid[/]")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    table = Table(title="financial tasks")
    for column in ("task", "family", "labels", "splits", "what"):
        table.add_column(column)
    for task in TASKS.values():
        table.add_row(
            task.name, task.family, "/".join(task.labels or ()) or "-", ",".join(task.splits), task.description
        )
    console.print(table)
    return 0
