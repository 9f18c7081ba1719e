"""`fintune validate FILE [RUN]`."""

from __future__ import annotations

import argparse

from fintune.cli.output import console, err_console
from fintune.config.files import validate_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    validate = sub.add_parser("validate", help="check a run-config file: every problem with its field path")
    validate.add_argument("file", help="YAML or JSON file of named runs")
    validate.add_argument("run", nargs="?", help="check only this run")
    validate.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    names, problems = validate_file(args.file, args.run)
    if problems:
        err_console.print(f"[red]{len(problems)} problem(s):[/]")
        for problem in problems:
            err_console.print(f"  {problem}", markup=False, highlight=False)
        return 1
    console.print(f"[green]{len(names)} run(s) valid:[/] {', '.join(names)}")
    return 0
