"""`fintune demo`: the defaults on the shared dev splits, in one table."""

from __future__ import annotations

import argparse
import time

from rich.table import Table

from fintune.cli.output import console, fmt


def add_parser(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="evaluate the embedded default models on the shared dev splits")
    demo.add_argument("--fpb-limit", type=int, help="score only the first N fpb dev sentences")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from fintune.demo import baseline_classification, baseline_retrieval

    start = time.perf_counter()
    rows = [baseline_retrieval(), baseline_classification(limit=args.fpb_limit)]
    table = Table(title="fintune defaults on the shared dev splits")
    for column in ("model", "task", "metric", "value"):
        table.add_column(column)
    for row in rows:
        for i, (name, value) in enumerate(row.metrics.items()):
            table.add_row(row.model if i == 0 else "", row.task if i == 0 else "", name, fmt(value))
    console.print(table)
    console.print(f"demo took {time.perf_counter() - start:.0f} s")
    return 0
