"""What the Train tab shows of a run, local or a service task: status line, loss plot rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

LOG_TAIL_LINES = 40
POLL_S = 1.0
LOSS_KEYS = ("loss", "eval_loss", "train_loss")


def loss_frame(points: Iterable[tuple[int, dict[str, Any]]]) -> pd.DataFrame:
    """The plot's rows from (step, logged values) pairs: one row per loss key present (also the server's)."""
    rows = []
    for step, logs in points:
        for key in LOSS_KEYS:
            value = logs.get(key)
            if isinstance(value, int | float):
                rows.append({"step": step, "loss": float(value), "series": key})
    return pd.DataFrame(rows, columns=["step", "loss", "series"])


def status_markdown(info: dict[str, Any]) -> str:
    total = info["total"] or "?"
    remaining = "?" if info["remaining_s"] is None else f"{info['remaining_s']:.0f} s"
    return (
        f"**{info['state']}** · step {info['step']}/{total} · elapsed {info['elapsed_s']:.0f} s · "
        f"remaining {remaining}  \njob `{info['job']}` → `{info['output']}`"
    )
