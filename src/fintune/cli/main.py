"""The `fintune` command."""

from __future__ import annotations

import argparse
import logging
import sys

from rich.markup import escape

from fintune import __version__
from fintune.cli import data, demo, embed, llm, models, rag, rerank, retrieval, service, ui, validate
from fintune.cli.output import err_console
from fintune.errors import FintuneError
from fintune.log import setup_logging
from fintune.perf import keep_freed_memory

# Raised by the operating system on a path: it names the path, which is one the user gave or can check.
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def is_user_error(exc: BaseException) -> bool:
    """One line, no traceback: fintune's own user errors, and the OS refusing a named path.

    Everything else (a ValueError or RuntimeError from a library, a FileNotFoundError raised by code
    without a path) is a bug to report, so it keeps its traceback."""
    if isinstance(exc, FintuneError):
        return True
    return isinstance(exc, PATH_ERRORS) and getattr(exc, "filename", None) is not None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fintune", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fintune {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (models, data, validate, embed, llm, retrieval, rag, rerank, service, demo, ui):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        setup_logging(args.log_level)
        keep_freed_memory()
        return args.func(args)
    except Exception as exc:
        if not is_user_error(exc) or logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        # escape: "[...]" in a message is text, not markup; soft_wrap: a long path is not broken in two
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
