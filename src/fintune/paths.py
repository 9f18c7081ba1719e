"""Where fintune keeps its cache and where the shared financial data lives."""

from __future__ import annotations

import os
from pathlib import Path


def fintune_home() -> Path:
    """Cache root: `$FINTUNE_HOME`, else `~/.cache/fintune`."""
    return Path(os.environ.get("FINTUNE_HOME") or Path.home() / ".cache" / "fintune")


def data_root() -> Path:
    """Root of the shared financial data: `$FINTUNE_DATA`, else the first `shared/data` found.

    The checkout sits beside `shared/` (`../shared/data` from the repository root), so look there
    relative to both the working directory and this installed source tree.
    """
    env = os.environ.get("FINTUNE_DATA")
    if env:
        return Path(env)
    candidates = [Path.cwd() / ".." / "shared" / "data", Path.cwd() / "shared" / "data"]
    candidates += [parent / "shared" / "data" for parent in Path(__file__).resolve().parents]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return (Path.cwd() / ".." / "shared" / "data").resolve()
