"""Run `setup_logging` inside a test and leave the process's logging as it was found."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import fintune.log

MANAGED_ENV = ("FINTUNE_LOG_LEVEL", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY")


@contextmanager
def saved_logging_state() -> Iterator[None]:
    import transformers.utils.logging as transformers_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    libraries = {name: logging.getLogger(name).level for name in fintune.log.VERBOSITY_ENV}
    env = {name: os.environ.get(name) for name in MANAGED_ENV}
    bars, ours = transformers_logging.is_progress_bar_enabled(), fintune.log._hub_bars_env_is_ours
    for name in MANAGED_ENV:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, lib_level in libraries.items():
            logging.getLogger(name).setLevel(lib_level)
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        fintune.log._hub_bars_env_is_ours = ours
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (transformers_logging.enable_progress_bar if bars else transformers_logging.disable_progress_bar)()
