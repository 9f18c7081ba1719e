"""Train tab with a server: what it derives from a task's record and events (no server needed)."""

from __future__ import annotations

import pytest

from fintune.errors import UsageError
from fintune.ui import train_server


def _event(number: int, kind: str, at_s: float, **data: object) -> dict:
    return {
        "id": number,
        "kind": kind,
        "at": f"2026-01-01T00:{int(at_s // 60):02d}:{at_s % 60:06.3f}+00:00",
        "data": data,
    }


# attempt 1 ran 3 steps at 10 s/step and was canceled; attempt 2 resumed at step 3 and runs at 4 s/step
EVENTS = [
    _event(1, "status", 0, status="pending"),
    _event(2, "status", 1, status="running", attempt=1),
    _event(3, "progress", 2, step=0, total=10),
    _event(4, "progress", 10, step=1, total=10, loss=2.5),
    _event(5, "log", 11, level="INFO", message="first"),
    _event(6, "progress", 30, step=3, total=10),
    _event(7, "status", 31, status="canceled"),
    _event(8, "status", 40, status="running", attempt=2),
    _event(9, "progress", 50, step=3, total=10),
    _event(10, "progress", 58, step=5, total=10, loss=1.25, eval_loss=1.5, learning_rate=1e-4),
    _event(11, "log", 59, level="WARNING", message="second"),
]


def test_remaining_time_is_the_current_attempts_pace_times_the_steps_left() -> None:
    assert train_server.remaining_s(EVENTS, 10) == 20.0  # (58 - 50) s / 2 steps * 5 steps left
    assert train_server.remaining_s(EVENTS[:4], 10) is None  # one step reported: no pace yet
    assert train_server.remaining_s(EVENTS, 0) is None


def test_the_loss_curve_and_log_tail_come_from_the_events() -> None:
    curve = train_server.losses(EVENTS).to_dict("records")
    assert curve == [
        {"step": 1, "loss": 2.5, "series": "loss"},
        {"step": 5, "loss": 1.25, "series": "loss"},
        {"step": 5, "loss": 1.5, "series": "eval_loss"},
    ]
    assert train_server.log_tail(EVENTS) == "INFO first\nWARNING second"
    assert train_server.log_tail(EVENTS, lines=1) == "WARNING second"


def test_the_status_shows_before_and_after_metrics_and_the_error() -> None:
    task = {"id": 7, "status": "failed", "created_at": "2026-01-01T00:00:00+00:00",
            "started_at": "2026-01-01T00:00:01+00:00", "finished_at": "2026-01-01T00:01:31.5+00:00",
            "progress": {"step": 5, "total": 10}, "artifact_path": None, "error": "out of memory",
            "metrics_before": {"ndcg@10": 0.5, "model": "minilm"},
            "metrics_after": {"ndcg@10": 0.61234, "mrr@10": 0.7}}  # fmt: skip
    info = train_server.status(task, EVENTS)
    assert (info["state"], info["step"], info["total"], info["elapsed_s"]) == ("failed", 5, 10, 90.5)
    assert info["remaining_s"] is None  # not running
    text = train_server.markdown(info)
    assert text.startswith("**failed** · step 5/10 · elapsed 90 s · remaining ?")
    assert "| ndcg@10 | 0.5000 | 0.6123 |\n| mrr@10 |  | 0.7000 |" in text and "model" not in text
    assert text.endswith("**error:** out of memory")


def test_bad_input_is_refused_before_any_request() -> None:
    nowhere = "http://127.0.0.1:9"
    with pytest.raises(UsageError, match="pipeline"):
        train_server.submit(nowhere, "", "gan", "", "", "", "")
    with pytest.raises(UsageError, match="key=value run options"):
        train_server.submit(nowhere, "", "llm", "", "", "", "--task fpb")
    with pytest.raises(UsageError, match="no task 'abc'"):
        train_server.fetch(nowhere, "", "abc")


def test_with_a_server_the_train_tab_wires_the_service_functions() -> None:
    from fintune.ui.app import build_app

    demo = build_app("http://127.0.0.1:9")
    named = {f.api_name: f.fn for f in demo.fns.values()}
    assert named["start"] is train_server.submit and named["stop"] is train_server.cancel
