"""Deployments tab (with `--server`): the service's tasks and named deployments, which version each one
serves, and switch / rollback, all through its HTTP API (`/v1/fine-tuning/tasks`, `/v1/deployments`).

The paths are written here rather than imported from fintune.service / fintune.serving: the UI needs no
service extras (FastAPI, psycopg) to talk to a server."""

from __future__ import annotations

from typing import Any

import gradio as gr
import httpx
import pandas as pd

from fintune.errors import UsageError

TASKS_PATH = "/v1/fine-tuning/tasks"  # fintune.service.app.PREFIX
DEPLOYMENTS_PATH = "/v1/deployments"  # fintune.serving.routes
COLUMNS = ["id", "kind", "status", "deploy", "created"]
DEPLOYMENT_COLUMNS = ["name", "kind", "live version", "previous version", "live model", "status"]
SWITCH_TIMEOUT_S = 1800.0  # a switch to a new embedding version re-embeds its bound collections first


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token.strip() else {}


def _detail(response: httpx.Response) -> str:
    """The API's own message: FastAPI's `detail` (a string, or a list of validation errors), else the body."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:200]
    if isinstance(detail, list):  # 422: [{"loc": [...], "msg": ...}, ...]
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
    return str(detail) if detail is not None else response.text[:200]


def _call(method: str, server: str, path: str, token: str, body: dict[str, Any] | None = None) -> Any:
    """One API call; a refused one becomes a UsageError naming the URL, status and the API's message."""
    url = server.strip().rstrip("/") + path
    try:
        if method == "GET":
            response = httpx.get(url, headers=_headers(token), timeout=10)
        else:
            response = httpx.post(url, headers=_headers(token), json=body, timeout=SWITCH_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise UsageError(f"{server}: {exc}") from None
    if response.status_code not in (200, 201):
        raise UsageError(f"{url}: HTTP {response.status_code}: {_detail(response)}")
    return response.json()


def list_tasks(server: str, token: str = "") -> pd.DataFrame:
    """The server's newest tasks (GET /v1/fine-tuning/tasks)."""
    rows = [_row(t) for t in _call("GET", server, TASKS_PATH, token).get("tasks", [])]
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


def list_deployments(server: str, token: str = "") -> pd.DataFrame:
    """One row per deployment: which version is live, which one a rollback returns to, the live model."""
    rows = []
    for d in _call("GET", server, DEPLOYMENTS_PATH, token).get("deployments", []):
        live, previous = d.get("live") or {}, d.get("previous") or {}
        model = live.get("model", "") + (f" + {live['adapter']}" if live.get("adapter") else "")
        rows.append([d["name"], d["kind"], live.get("version", ""), previous.get("version", ""), model,
                     live.get("status", "")])  # fmt: skip
    return pd.DataFrame(rows, columns=DEPLOYMENT_COLUMNS)


def get_deployment(server: str, token: str, name: str) -> dict[str, Any]:
    """GET /v1/deployments/{name} as the API returns it."""
    if not name:
        raise UsageError("pick a deployment (Refresh lists them)")
    result: dict[str, Any] = _call("GET", server, f"{DEPLOYMENTS_PATH}/{name}", token)
    return result


def version_choices(server: str, token: str, name: str) -> tuple[list[str], str]:
    """The deployment's versions, oldest first (ready, failed or being built), and the live one."""
    found = get_deployment(server, token, name)
    return [v["version"] for v in found.get("versions", [])], found["live"]["version"]


def switch(server: str, token: str, name: str, version: str, model: str = "", adapter: str = "") -> str:
    """POST /v1/deployments/{name}/switch: a ready version goes live at once; a new version needs its model
    (or adapter) and goes live once built. Returns a one-line account of what happened."""
    if not name:
        raise UsageError("pick a deployment (Refresh lists them)")
    if not (version or "").strip():
        raise UsageError("pick or type the version to make live")
    body: dict[str, Any] = {"version": version.strip()}
    body |= {"model": model.strip()} if model.strip() else {}
    body |= {"adapter": adapter.strip()} if adapter.strip() else {}
    return _summary(_call("POST", server, f"{DEPLOYMENTS_PATH}/{name}/switch", token, body))


def rollback(server: str, token: str, name: str) -> str:
    """POST /v1/deployments/{name}/rollback: the previous version live again."""
    if not name:
        raise UsageError("pick a deployment (Refresh lists them)")
    return _summary(_call("POST", server, f"{DEPLOYMENTS_PATH}/{name}/rollback", token))


def _summary(result: dict[str, Any]) -> str:
    if not result.get("switched"):
        return f"{result['deployment']}: {result['live']} was already live; nothing changed"
    rebuilt = ", ".join(f"{k} -> {v}" for k, v in (result.get("rebuilt") or {}).items())
    return (
        f"{result['deployment']}: {result['live']} is live (previous {result.get('previous') or 'none'}), "
        f"in {result.get('seconds', 0):.1f} s" + (f"; rebuilt {rebuilt}" if rebuilt else "")
    )


def build_tab(server: str) -> None:
    """The Deployments tab's components and events (inside a `gr.Blocks`)."""
    gr.Markdown(f"Server: `{server}`")
    token = gr.Textbox(label="bearer token (if the server requires one)", type="password")
    address = gr.State(server)
    refresh = gr.Button("Refresh")
    deployed = gr.Dataframe(headers=DEPLOYMENT_COLUMNS, label="deployments", interactive=False)
    with gr.Row():
        name = gr.Dropdown([], label="deployment", allow_custom_value=True)
        version = gr.Dropdown([], label="version (pick one, or type a new one)", allow_custom_value=True)
    with gr.Row():
        model = gr.Textbox(label="model for a new version (folder or alias)")
        adapter = gr.Textbox(label="LLM: adapter for a new version")
    with gr.Row():
        switch_button = gr.Button("Switch", variant="primary")
        rollback_button = gr.Button("Rollback", variant="stop")
    outcome = gr.Textbox(label="result", interactive=False)
    with gr.Accordion("Tasks", open=False):
        tasks = gr.Dataframe(headers=COLUMNS, label="tasks", interactive=False)
        refresh_tasks = gr.Button("Refresh tasks")

    def refreshed(url: str, key: str, current: str | None) -> tuple[pd.DataFrame, Any]:
        table = list_deployments(url, key)
        names = table["name"].tolist()
        keep = current if current in names else (names[0] if names else None)
        return table, gr.update(choices=names, value=keep)

    def picked(url: str, key: str, chosen: str | None) -> Any:
        if not chosen:
            return gr.update(choices=[], value=None)
        versions, live = version_choices(url, key, chosen)
        return gr.update(choices=versions, value=live)

    def row_selected(table: pd.DataFrame, evt: gr.SelectData) -> str:
        return str(table.iloc[evt.index[0]]["name"])  # a click anywhere in a row picks its deployment

    refresh.click(refreshed, [address, token, name], [deployed, name], api_name="refresh_deployments")
    name.change(picked, [address, token, name], version, api_name="deployment_versions")
    deployed.select(row_selected, deployed, name)

    def moved(url: str, key: str, chosen: str | None) -> tuple[pd.DataFrame, Any]:
        return list_deployments(url, key), picked(url, key, chosen)  # the table and the picker follow a move

    after = {"fn": moved, "inputs": [address, token, name], "outputs": [deployed, version]}
    switch_button.click(
        switch, [address, token, name, version, model, adapter], outcome, api_name="switch_deployment"
    ).success(**after)
    rollback_button.click(rollback, [address, token, name], outcome, api_name="rollback_deployment").success(**after)
    refresh_tasks.click(list_tasks, [address, token], tasks, api_name="server_tasks")
