"""Logging set-up shared by the CLI and library: one rich handler, level from flag or env."""

from __future__ import annotations

import logging
import os

from rich.logging import RichHandler


def setup_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("FINTUNE_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(show_path=False, rich_tracebacks=False)],
        force=True,
    )
    # The libraries under us are chatty at INFO; keep their warnings only.
    for name in ("transformers", "sentence_transformers", "httpx", "huggingface_hub", "datasets"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
