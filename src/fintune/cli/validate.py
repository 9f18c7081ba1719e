"""`fintune validate FILE [RUN]`."""

from __future__ import annotations

import argparse

from fintune.cli.output import console, err_console
from fintune.config.files import ConfigError, ConfigProblem, read_runs, validate_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    validate = sub.add_parser("validate", help="check a run-config file: every problem with its field path")
    validate.add_argument("file", help="YAML or JSON file of named runs")
    validate.add_argument("run", nargs="?", help="check only this run")
    validate.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    names, problems = _validate(args.file, args.run)
    if problems:
        err_console.print(f"[red]{len(problems)} problem(s):[/]")
        for problem in problems:
            err_console.print(f"  {problem}", markup=False, highlight=False)
        return 1
    console.print(f"[green]{len(names)} run(s) valid:[/] {', '.join(names)}")
    return 0


def _validate(file: str, run: str | None) -> tuple[list[str], list[ConfigProblem]]:
    """Embed and LLM runs through the pipeline table; federated runs (their own kind) through their loader."""
    try:
        runs, _ = read_runs(file)
    except ConfigError as exc:
        return [], exc.problems
    if run is not None and run not in runs:
        return validate_file(file, run)  # names the unknown run and the close matches
    names: list[str] = []
    problems: list[ConfigProblem] = []
    for name in [run] if run else list(runs):
        if runs[name].get("pipeline") == "federated":
            from fintune.federated.config import load_federated_run

            names.append(name)
            try:
                load_federated_run(file, name)
            except ConfigError as exc:
                problems.extend(exc.problems)
        else:
            checked, found = validate_file(file, name)
            names += checked
            problems += found
    return names, problems
