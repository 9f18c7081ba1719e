"""Deployments tab (with `--server`): what the task service holds, read through its HTTP API.

The service has no deployment routes yet (which version is live, switch, rollback): this tab lists the
tasks, with the deployment each one asked for, and grows with those routes."""

from __future__ import annotations

from typing import Any

import gradio as gr
import httpx
import pandas as pd

from fintune.errors import UsageError

TASKS_PATH = "/v1/fine-tuning/tasks"  # fintune.service.app.PREFIX, not imported: the UI needs no service extras
COLUMNS = ["id", "kind", "status", "deploy", "created"]


def list_tasks(server: str, token: str = "") -> pd.DataFrame:
    """The server's newest tasks (GET /v1/fine-tuning/tasks)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(server.rstrip("/") + TASKS_PATH, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise UsageError(f"{server}: {exc}") from None
    if response.status_code != 200:
        raise UsageError(f"{server}{TASKS_PATH}: HTTP {response.status_code}: {response.text[:200]}")
    rows = [_row(t) for t in response.json().get("tasks", [])]
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(task: dict[str, Any]) -> dict[str, Any]:
    deploy = (task.get("request") or {}).get("deploy") or {}
    return {
        "id": task.get("id"),
        "kind": task.get("kind"),
        "status": task.get("status"),
        "deploy": deploy.get("name", "") if isinstance(deploy, dict) else "",
        "created": task.get("created_at", ""),
    }


def build_tab(server: str) -> None:
    """The Deployments tab's components and events (inside a `gr.Blocks`)."""
    gr.Markdown(f"Server: `{server}`")
    token = gr.Textbox(label="bearer token (if the server requires one)", type="password")
    refresh = gr.Button("Refresh")
    table = gr.Dataframe(headers=COLUMNS, label="tasks")
    address = gr.State(server)
    refresh.click(list_tasks, [address, token], table, api_name="server_tasks")
