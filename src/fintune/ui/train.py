"""Train tab: `fintune embed|llm train` as a subprocess this UI owns, watched live, stoppable.

Each job runs in its own process group (so Stop reaches dataloader workers too) and writes its log and a
JSONL progress file (`$FINTUNE_PROGRESS_FILE`, see `fintune.progress`) under the UI's job folder. The
registry lives in this process, keyed by job id, so a reloaded page re-attaches to the running job.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from fintune.errors import UsageError
from fintune.paths import fintune_home
from fintune.ui import train_server
from fintune.ui.training_view import LOG_TAIL_LINES, POLL_S, loss_frame, status_markdown

PIPELINES = ("embed", "llm")
STOP_GRACE_S = 10.0  # SIGTERM first (lets the trainer close files); SIGKILL after this


@dataclass
class Job:
    id: str
    command: list[str]
    output: Path
    folder: Path  # log.txt and progress.jsonl
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.time)
    stopped: bool = False

    @property
    def log(self) -> Path:
        return self.folder / "log.txt"

    @property
    def progress(self) -> Path:
        return self.folder / "progress.jsonl"


JOBS: dict[str, Job] = {}


def jobs_root() -> Path:
    return fintune_home() / "ui" / "jobs"


def train_command(pipeline: str, config: str, run: str, data: str, output: str, overrides: str) -> list[str]:
    """The CLI call the job runs (the same command a user would type)."""
    if pipeline not in PIPELINES:
        raise UsageError(f"pipeline must be one of {', '.join(PIPELINES)}, not {pipeline!r}")
    if not output.strip():
        raise UsageError("give an output folder")
    command = [sys.executable, "-m", "fintune", pipeline, "train", "--output", output.strip()]
    if config.strip():
        command += ["--config", config.strip()]
    if run.strip():
        command += ["--run", run.strip()]
    if data.strip():
        command += ["--data", data.strip()]
    return command + shlex.split(overrides)  # quoted values keep their spaces, as in a shell


def start_job(pipeline: str, config: str, run: str, data: str, output: str, overrides: str) -> str:
    """Start training in a new process group; returns the job id."""
    from fintune.progress import PROGRESS_FILE_ENV  # imports transformers: not at the page's start

    command = train_command(pipeline, config, run, data, output, overrides)
    job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    folder = jobs_root() / job_id
    folder.mkdir(parents=True)
    env = os.environ | {PROGRESS_FILE_ENV: str(folder / "progress.jsonl"), "PYTHONUNBUFFERED": "1"}
    with open(folder / "log.txt", "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    JOBS[job_id] = Job(job_id, command, Path(output.strip()), folder, process)
    return job_id


def latest_running() -> str | None:
    """The newest job still running: what a freshly loaded page shows."""
    running = [j for j in JOBS.values() if j.process.poll() is None]
    return max(running, key=lambda j: j.started).id if running else None


def _job(job_id: str | None) -> Job:
    if not job_id or job_id not in JOBS:
        raise UsageError(f"no job {job_id!r} in this UI (jobs: {', '.join(JOBS) or 'none'})")
    return JOBS[job_id]


def read_progress(path: Path) -> list[dict[str, Any]]:
    """The progress lines written so far (a line being written is skipped until complete)."""
    if not path.is_file():
        return []
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return lines


def status(job_id: str | None) -> dict[str, Any]:
    """State, step of total, elapsed and estimated remaining seconds."""
    job = _job(job_id)
    code = job.process.poll()
    state = "running" if code is None else "stopped" if job.stopped else "finished" if code == 0 else "failed"
    lines = read_progress(job.progress)
    step = max((int(p["step"]) for p in lines), default=0)
    total = max((int(p["max_steps"]) for p in lines), default=0)
    elapsed = (time.time() if code is None else job.log.stat().st_mtime) - job.started
    times = [float(p["time"]) for p in lines if int(p["step"]) > 0]
    remaining = None
    if step > 1 and total and code is None:
        per_step = (max(times) - min(times)) / (step - 1)  # from the first step on: start-up is not a step's time
        remaining = per_step * (total - step)
    return {
        "job": job.id,
        "state": state,
        "returncode": code,
        "step": step,
        "total": total,
        "elapsed_s": round(elapsed, 1),
        "remaining_s": None if remaining is None else round(remaining, 1),
        "output": str(job.output),
        "command": " ".join(job.command),
    }


def losses(job_id: str | None) -> pd.DataFrame:
    """Logged losses by step (series: loss, eval_loss, and train_loss: the run's mean, logged at its end)."""
    return loss_frame((int(p["step"]), p.get("logs", {})) for p in read_progress(_job(job_id).progress))


def past_jobs() -> list[str]:
    """Job folders of this and earlier UI sessions that recorded progress, newest first."""
    root = jobs_root()
    found = [d.name for d in root.iterdir() if (d / "progress.jsonl").is_file()] if root.is_dir() else []
    return sorted(found, reverse=True)


def curves(job_ids: list[str] | None) -> pd.DataFrame:
    """Training loss by step of several jobs, one series per job (from their progress files)."""
    rows = []
    for job_id in job_ids or []:
        for p in read_progress(jobs_root() / job_id / "progress.jsonl"):
            value = p.get("logs", {}).get("loss")
            if isinstance(value, int | float):
                rows.append({"step": int(p["step"]), "loss": float(value), "series": job_id})
    return pd.DataFrame(rows, columns=["step", "loss", "series"])


def log_tail(job_id: str | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of the job's output; tqdm's carriage-return redraws are kept as their last state."""
    text = _job(job_id).log.read_bytes().decode("utf-8", errors="replace")  # bytes: keep "\r" to see redraws
    shown = [line.rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(shown[-lines:])


def stop_job(job_id: str | None) -> dict[str, Any]:
    """Terminate the job's process group and check nothing half-written is left as its output.

    The trainers write into a temporary sibling and rename it into place only when complete, so a stopped
    run leaves no output folder; a temporary sibling a killed save could not clean up is removed here.
    Checkpoints (`.NAME.work`) stay, so the same command resumes."""
    job = _job(job_id)
    if job.process.poll() is None:
        job.stopped = True
        _signal_group(job.process.pid, signal.SIGTERM)
        try:
            job.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(job.process.pid, signal.SIGKILL)
            job.process.wait()
    leftovers = sorted(job.output.parent.glob(f".{job.output.name}.tmp-*"))
    for folder in leftovers:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "job": job.id,
        "stopped": job.stopped,
        "process_gone": job.process.poll() is not None and not _group_alive(job.process.pid),
        "output_exists": job.output.exists(),
        "removed_partial": [str(f) for f in leftovers],
    }


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_tab(demo: gr.Blocks, server: str | None = None) -> None:
    """The Train tab's components and events (inside `demo`); a loaded page re-attaches to the running job.
    With `server` (a task service URL) training runs as the service's task instead: see `train_server`."""
    with gr.Row():
        pipeline = gr.Radio(list(PIPELINES), value="embed", label="pipeline")
        config = gr.Textbox(label="config file (empty: the default recipe)")
        run = gr.Textbox(label="run name in the config")
    with gr.Row():
        data = gr.Textbox(label="data (BEIR folder or records file; empty: the run's)")
        output = gr.Textbox("runs/ui-run", label="output folder", visible=not server)  # a server picks its own
    overrides = gr.Textbox(
        label="overrides: key=value or flags (e.g. epochs=1 batch_size=16; llm: --task fpb max_steps=20)"
    )
    with gr.Row():
        start = gr.Button("Start", variant="primary")
        stop = gr.Button("Stop", variant="stop")
    token = gr.Textbox(label="bearer token (if the server requires one)", type="password", visible=bool(server))
    job_id = gr.Textbox(label="task id" if server else "job", interactive=bool(server))  # attach to any task
    state = gr.Markdown()
    plot = gr.LinePlot(x="step", y="loss", color="series", label="loss", height=260)
    tail = gr.Textbox(label="log tail", lines=12, max_lines=12, autoscroll=True)
    stop_result = gr.JSON(label="stop")
    with gr.Accordion("Loss curves of several runs", open=False):
        with gr.Row():
            chosen = gr.Dropdown([], multiselect=True, label="jobs", allow_custom_value=True)
            list_jobs = gr.Button("List jobs")
        overlay = gr.LinePlot(x="step", y="loss", color="series", label="training loss", height=260)

    list_jobs.click(lambda: gr.update(choices=past_jobs()), None, chosen, api_name="past_jobs")
    chosen.change(curves, chosen, overlay, api_name="curves")
    if server:
        train_server.wire(demo, server, token, [pipeline, config, run, data, overrides], start, stop, job_id,
                          [state, plot, tail], stop_result)  # fmt: skip
        return

    def refresh(jid: str) -> tuple[Any, Any, Any]:
        if not jid or jid not in JOBS:
            return gr.update(), gr.update(), gr.update()
        return status_markdown(status(jid)), losses(jid), log_tail(jid)

    start.click(start_job, [pipeline, config, run, data, output, overrides], job_id, api_name="start")
    stop.click(stop_job, job_id, stop_result, api_name="stop")
    gr.Timer(POLL_S).tick(refresh, job_id, [state, plot, tail], show_progress="hidden", api_name="refresh")
    demo.load(lambda: latest_running() or "", None, job_id, api_name="running_job")
