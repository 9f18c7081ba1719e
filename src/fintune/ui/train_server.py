"""Train tab with `--server`: training as a task of the fintune task service, watched through its HTTP API.

Everything the tab shows comes from the task's record (`GET /v1/fine-tuning/tasks/{id}`: status, progress,
before/after metrics, error) and its events (`.../events`: progress events give the loss curve and the
remaining-time estimate, log events the log tail). Stop is the API's cancel: the worker stops at its next
step and writes no artefact. A loaded page re-attaches to the server's newest pending or running task.
HTTP only, as the Deployments tab: the UI needs none of the service's extras."""

from __future__ import annotations

import os
import shlex
import threading
import time
from datetime import datetime
from typing import Any

import gradio as gr
import httpx
import pandas as pd

from fintune.errors import UsageError
from fintune.ui.deployments import TASKS_PATH, _detail, _headers
from fintune.ui.training_view import LOG_TAIL_LINES, POLL_S, loss_frame, status_markdown

KINDS = {"embed": "embedding", "llm": "llm"}  # the tab's pipeline -> the service's task kind
FINISHED = ("succeeded", "failed", "canceled", "refused")
EVENTS_PAGE = 1000  # the API's largest page
STOP_WAIT_S = 60.0  # a running task stops at its next optimizer step (after saving its checkpoint)
TOKEN_ENV = "FINTUNE_API_TOKEN"  # as `fintune tasks`: lets a reloaded page re-attach before a token is typed

# Events read so far, by (server, task id): each poll asks only for newer ones. The lock keeps two polls
# of the same task (two open pages) from appending the same page twice.
_EVENTS: dict[tuple[str, int], list[dict[str, Any]]] = {}
_LOCK = threading.Lock()


def _call(method: str, server: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
    """One API call, as the Deployments tab's, but any 2xx is an answer: a cancel of a running task is a 202."""
    url = server.strip().rstrip("/") + path
    try:
        response = httpx.request(method, url, headers=_headers(token), json=body, timeout=30)
    except httpx.HTTPError as exc:
        raise UsageError(f"{server}: {exc}") from None
    if not response.is_success:
        raise UsageError(f"{url}: HTTP {response.status_code}: {_detail(response)}")
    return response.json()


def _token(token: str) -> str:
    return token.strip() or os.environ.get(TOKEN_ENV, "")


def _task_id(task_id: str | None) -> int:
    if not (task_id or "").strip().isdigit():
        raise UsageError(f"no task {task_id!r}: start one, or type a task id of the server")
    return int(str(task_id).strip())


def submit(server: str, token: str, pipeline: str, config: str, run: str, data: str, overrides: str) -> str:
    """POST the training as a task; returns its id. `config`/`data` are paths under the server's data roots,
    `overrides` key=value run options (the same as `fintune tasks submit --set`)."""
    from fintune.config.files import ConfigError, parse_overrides

    if pipeline not in KINDS:
        raise UsageError(f"pipeline must be one of {', '.join(KINDS)}, not {pipeline!r}")
    try:
        options = parse_overrides(shlex.split(overrides))
    except ConfigError as exc:
        raise UsageError(f"overrides: {exc} (with a server they are key=value run options, e.g. task=fpb)") from None
    options |= {key: value.strip() for key, value in (("run_file", config), ("run", run)) if value.strip()}
    body = {"kind": KINDS[pipeline], "data": data.strip() or None, "config": options}
    return str(_call("POST", server, TASKS_PATH, _token(token), body)["id"])


def fetch(server: str, token: str, task_id: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The task's record and all its events so far."""
    tid, key = _task_id(task_id), _token(token)
    task: dict[str, Any] = _call("GET", server, f"{TASKS_PATH}/{tid}", key)
    with _LOCK:
        seen = _EVENTS.setdefault((server, tid), [])
        while True:
            after = seen[-1]["id"] if seen else 0
            path = f"{TASKS_PATH}/{tid}/events?after={after}&limit={EVENTS_PAGE}"
            page = _call("GET", server, path, key)["events"]
            seen.extend(page)
            if len(page) < EVENTS_PAGE:
                return task, list(seen)


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def status(task: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """The tab's status (the keys of `train.status`) plus the task's before/after metrics and error."""
    progress = task.get("progress") or {}
    step, total = int(progress.get("step") or 0), int(progress.get("total") or 0)
    started = _seconds(task.get("started_at") or task["created_at"])
    # the server's clock against this one's while running: the two are assumed in step (NTP)
    ended = _seconds(task["finished_at"]) if task.get("finished_at") else time.time()
    return {
        "job": f"task {task['id']}",
        "state": task["status"],
        "step": step,
        "total": total,
        "elapsed_s": round(max(ended - started, 0.0), 1),
        "remaining_s": remaining_s(events, total) if task["status"] == "running" else None,
        "output": task.get("artifact_path") or "the server's artefact folder",
        "metrics_before": task.get("metrics_before"),
        "metrics_after": task.get("metrics_after"),
        "error": task.get("error"),
    }


def remaining_s(events: list[dict[str, Any]], total: int) -> float | None:
    """Seconds per step between the current attempt's first and last reported steps, times the steps left
    (start-up is not a step's time; a restarted attempt resumes mid-run, so earlier attempts are left out)."""
    starts = [i for i, e in enumerate(events) if e["kind"] == "status" and e["data"].get("status") == "running"]
    current = events[starts[-1] :] if starts else events
    points = [(int(e["data"]["step"]), _seconds(e["at"])) for e in current
              if e["kind"] == "progress" and int(e["data"].get("step") or 0) > 0]  # fmt: skip
    if not total or len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    (first_step, first_at), (last_step, last_at) = points[0], points[-1]
    return round((last_at - first_at) / (last_step - first_step) * (total - last_step), 1)


def losses(events: list[dict[str, Any]]) -> pd.DataFrame:
    """The loss curve from the progress events (their loss keys are flat, beside step and total)."""
    return loss_frame((int(e["data"].get("step") or 0), e["data"]) for e in events if e["kind"] == "progress")


def log_tail(events: list[dict[str, Any]], lines: int = LOG_TAIL_LINES) -> str:
    logged = [f"{e['data'].get('level', '')} {e['data'].get('message', '')}" for e in events if e["kind"] == "log"]
    return "\n".join(logged[-lines:])


def markdown(info: dict[str, Any]) -> str:
    """The status line, then the before/after metrics once there are any, and the error of a failed task."""
    text = status_markdown(info)
    before, after = info.get("metrics_before") or {}, info.get("metrics_after") or {}
    names = [k for k in dict.fromkeys([*before, *after]) if isinstance(before.get(k, after.get(k)), int | float)]
    if names:
        text += "\n\n| metric | before | after |\n|---|---|---|\n" + "\n".join(
            f"| {k} | {_number(before.get(k))} | {_number(after.get(k))} |" for k in names
        )
    return text + (f"\n\n**error:** {info['error']}" if info.get("error") else "")


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else ""


def view(server: str, token: str, task_id: str | None) -> tuple[str, pd.DataFrame, str]:
    """What one poll shows: status markdown, loss curve, log tail."""
    task, events = fetch(server, token, task_id)
    return markdown(status(task, events)), losses(events), log_tail(events)


def cancel(server: str, token: str, task_id: str | None, wait_s: float = STOP_WAIT_S) -> dict[str, Any]:
    """POST cancel, then wait (up to `wait_s`) for the task to end; returns its final status and artefact."""
    tid, key = _task_id(task_id), _token(token)
    task: dict[str, Any] = _call("POST", server, f"{TASKS_PATH}/{tid}/cancel", key)
    deadline = time.monotonic() + wait_s
    while task["status"] not in FINISHED and time.monotonic() < deadline:
        time.sleep(POLL_S)
        task = _call("GET", server, f"{TASKS_PATH}/{tid}", key)
    return {"task": tid, "status": task["status"], "artifact_path": task.get("artifact_path")}


def active_task(server: str, token: str) -> str:
    """The newest pending or running task's id ("" when none): what a freshly loaded page shows."""
    key = _token(token)
    pages = [_call("GET", server, f"{TASKS_PATH}?status={state}", key)["tasks"] for state in ("running", "pending")]
    found = [task["id"] for page in pages for task in page]
    return str(max(found)) if found else ""


def wire(
    demo: gr.Blocks,
    server: str,
    token: gr.Textbox,
    inputs: list[Any],
    start: gr.Button,
    stop: gr.Button,
    task_id: gr.Textbox,
    shown: list[Any],
    stop_result: gr.JSON,
) -> None:
    """The Train tab's events with a server (`inputs`: pipeline, config, run, data, overrides; `shown`: the
    status markdown, loss plot and log tail); the same api names as the local ones."""
    address = gr.State(server)

    def refresh(url: str, key: str, tid: str) -> tuple[Any, Any, Any]:
        if not tid.strip():
            return gr.update(), gr.update(), gr.update()
        try:
            return view(url, key, tid)
        except UsageError as exc:  # a poll each second: say it on the page rather than raise a toast each time
            return f"**{exc}**", gr.update(), gr.update()

    def attach(url: str, key: str) -> str:
        try:
            return active_task(url, key)
        except UsageError:  # e.g. the token not typed yet: nothing to attach to
            return ""

    start.click(submit, [address, token, *inputs], task_id, api_name="start")
    stop.click(cancel, [address, token, task_id], stop_result, api_name="stop")
    gr.Timer(POLL_S).tick(refresh, [address, token, task_id], shown, show_progress="hidden", api_name="refresh")
    demo.load(attach, [address, token], task_id, api_name="running_job")
