"""The `fintune` command."""

from __future__ import annotations

import argparse
import logging
import sys

from fintune import __version__
from fintune.cli import data, demo, embed, llm, models, retrieval, validate
from fintune.cli.output import err_console
from fintune.config.files import ConfigError
from fintune.data.errors import DataError
from fintune.log import setup_logging
from fintune.models.resolve import ModelNotFoundError
from fintune.perf import keep_freed_memory
from fintune.retrieval.catalog import StoreError

# Errors a user can fix: one clear message, no traceback.
USER_ERRORS = (
    DataError,
    ConfigError,
    ModelNotFoundError,
    StoreError,
    FileNotFoundError,
    FileExistsError,
    ValueError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fintune", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fintune {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (models, data, validate, embed, llm, retrieval, demo):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    keep_freed_memory()
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        err_console.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
