"""Logging set-up shared by the CLI and library: one rich handler on standard error, level from flag or env.

Standard output carries only a command's data (tables, JSON, JSONL), so every log line, warning and
progress bar goes to standard error. Below DEBUG the console shows fintune's own messages and other
libraries' errors only: their warnings (bitsandbytes' missing CPU kernel, onnxruntime's quantisation
advice, transformers' deprecations) and weight-loading progress bars say nothing a fintune user can act on.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Hashable, Iterable
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler

from fintune.errors import UsageError

T = TypeVar("T", bound=Hashable)

OWN_LOGGERS = ("fintune", "__main__")
HUB_BARS_ENV = "HF_HUB_DISABLE_PROGRESS_BARS"
# Libraries that log through a handler of their own (not propagating to ours): their level comes from these.
VERBOSITY_ENV = {"transformers": "TRANSFORMERS_VERBOSITY", "datasets": "DATASETS_VERBOSITY"}

_hub_bars_env_is_ours = False
_reported: set[Hashable] = set()


def parse_level(level: str | None) -> int:
    name = (level or os.environ.get("FINTUNE_LOG_LEVEL") or "INFO").upper()
    value = logging.getLevelName(name)
    if not isinstance(value, int):
        raise UsageError(f"unknown log level {name!r}: use DEBUG, INFO, WARNING or ERROR")
    return value


class ThirdPartyFilter(logging.Filter):
    """Pass every fintune record, and other loggers' records from `minimum` up."""

    def __init__(self, minimum: int) -> None:
        super().__init__()
        self.minimum = minimum

    def filter(self, record: logging.LogRecord) -> bool:
        return is_own(record.name) or record.levelno >= self.minimum


def is_own(name: str) -> bool:
    return any(name == own or name.startswith(f"{own}.") for own in OWN_LOGGERS)


def setup_logging(level: str | None = None) -> None:
    value = parse_level(level)
    debug = value <= logging.DEBUG
    handler = RichHandler(
        console=Console(stderr=True, width=None if sys.stderr.isatty() else 160),
        show_path=False,
        rich_tracebacks=False,
    )
    # At DEBUG other libraries' INFO shows too, but not their DEBUG floods (file locks, HTTP, plugins).
    handler.addFilter(ThirdPartyFilter(logging.INFO if debug else logging.ERROR))
    logging.basicConfig(level=value, format="%(message)s", handlers=[handler], force=True)
    logging.captureWarnings(True)  # Python warnings (FutureWarning, ...) become "py.warnings" records: filtered
    _library_verbosity(debug)
    _library_progress_bars(show=debug)


def _library_verbosity(debug: bool) -> None:
    verbosity = "warning" if debug else "error"
    for name, env in VERBOSITY_ENV.items():
        os.environ[env] = verbosity  # read when the library configures its logger, i.e. on first import
        logging.getLogger(name).setLevel(verbosity.upper())  # in case it is imported already


def _library_progress_bars(show: bool) -> None:
    """transformers' "Loading weights" bars (and the hub's download bars) on every model load.

    transformers reads the hub's switch when it is imported; when it already is, flip its own switch.
    A value the user set in the environment is left alone."""
    global _hub_bars_env_is_ours
    if not show and HUB_BARS_ENV not in os.environ:
        os.environ[HUB_BARS_ENV] = "1"
        _hub_bars_env_is_ours = True
    elif show and _hub_bars_env_is_ours:
        os.environ.pop(HUB_BARS_ENV, None)
        _hub_bars_env_is_ours = False
    transformers_logging = sys.modules.get("transformers.utils.logging")
    if transformers_logging is not None:
        with warnings.catch_warnings():  # the hub warns when its environment switch overrides the call
            warnings.simplefilter("ignore")
            if show:
                transformers_logging.enable_progress_bar()
            else:
                transformers_logging.disable_progress_bar()


def first_reports(items: Iterable[T]) -> list[T]:
    """The items not reported before in this process, now marked reported.

    The same file is often read several times in one run (each split of a BEIR folder, then the corpus
    for indexing): its bad records are worth one warning, not one per read."""
    fresh = [item for item in dict.fromkeys(items) if item not in _reported]
    _reported.update(fresh)
    return fresh
