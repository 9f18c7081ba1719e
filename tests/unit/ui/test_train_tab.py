"""Train tab: the command it runs, and progress read back from the trainer's progress file."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from fintune.errors import UsageError
from fintune.progress import PROGRESS_FILE_ENV, ProgressFileCallback
from fintune.ui import train


def test_the_command_is_the_cli_call_a_user_would_type() -> None:
    command = train.train_command(
        "llm", "configs/llm.json", "fpb_run", "", "runs/x", "--task fpb 'system_prompt=Be brief.'"
    )
    assert command[1:] == [
        "-m", "fintune", "llm", "train", "--output", "runs/x", "--config", "configs/llm.json", "--run", "fpb_run",
        "--task", "fpb", "system_prompt=Be brief.",
    ]  # fmt: skip
    with pytest.raises(UsageError, match="pipeline"):
        train.train_command("gan", "", "", "", "runs/x", "")
    with pytest.raises(UsageError, match="output"):
        train.train_command("embed", "", "", "", " ", "")


def test_the_progress_callback_writes_what_the_tab_reads(tmp_path, monkeypatch) -> None:
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(PROGRESS_FILE_ENV, str(path))
    callback = ProgressFileCallback()
    for step, loss in ((1, 2.0), (2, 1.5)):
        state = SimpleNamespace(is_world_process_zero=True, max_steps=4, global_step=step)
        callback.on_step_end(None, state, None)
        callback.on_log(None, state, None, logs={"loss": loss, "learning_rate": 1e-4, "note": "text"})
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "progress.jsonl").write_text(path.read_text() + '{"time": 1, "st')  # a line still being written
    (folder / "log.txt").write_text("start\nbar 1/4\rbar 2/4\n")
    job = train.Job("j1", ["fintune"], tmp_path / "out", folder, process)
    monkeypatch.setitem(train.JOBS, "j1", job)
    try:
        info = train.status("j1")
        assert (info["state"], info["step"], info["total"]) == ("running", 2, 4)
        times = [json.loads(line)["time"] for line in path.read_text().splitlines()]
        assert info["remaining_s"] == pytest.approx(2 * (max(times) - times[0]), abs=0.05)  # 2 steps to go
        assert train.losses("j1").to_dict("records") == [
            {"step": 1, "loss": 2.0, "series": "loss"},
            {"step": 2, "loss": 1.5, "series": "loss"},
        ]
        assert train.log_tail("j1") == "start\nbar 2/4\n"
        assert train.latest_running() == "j1"
        stopped = train.stop_job("j1")
        assert stopped["process_gone"] and not stopped["output_exists"]
        assert train.status("j1")["state"] == "stopped" and train.latest_running() is None
    finally:
        process.kill()
        process.wait()


def test_an_unknown_job_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="no job 'nope'"):
        train.status("nope")


def test_runs_are_overlaid_one_series_each_from_their_progress_files(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(train, "jobs_root", lambda: tmp_path)
    for job, losses in (("20260101-a", (3.0, 2.0)), ("20260102-b", (2.5,))):
        (tmp_path / job).mkdir()
        lines = [{"time": 0, "step": 10 * (i + 1), "max_steps": 20, "logs": {"loss": v}} for i, v in enumerate(losses)]
        (tmp_path / job / "progress.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "no-progress").mkdir()
    assert train.past_jobs() == ["20260102-b", "20260101-a"]
    frame = train.curves(["20260101-a", "20260102-b"])
    assert frame.to_dict("records") == [
        {"step": 10, "loss": 3.0, "series": "20260101-a"},
        {"step": 20, "loss": 2.0, "series": "20260101-a"},
        {"step": 10, "loss": 2.5, "series": "20260102-b"},
    ]
