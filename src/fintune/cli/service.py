"""`fintune serve` (task API + a worker) and `fintune worker` (more workers, here or on other machines)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fintune.errors import InputNotFoundError, UsageError
from fintune.paths import fintune_home

if TYPE_CHECKING:
    import httpx

SERVER_ENV = "FINTUNE_SERVER"
DEFAULT_SERVER = "http://127.0.0.1:8000"
TASKS = "/v1/fine-tuning/tasks"
FINISHED = ("succeeded", "failed", "canceled", "refused")

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve", help="fine-tuning task API, OpenAI-compatible serving and deployments (OpenAPI at /docs), one worker"
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--database",
        help="PostgreSQL URL shared with other API processes and workers (default: $FINTUNE_DATABASE_URL, "
        "else an embedded server under $FINTUNE_HOME, started and stopped with this command)",
    )
    serve.add_argument("--workers", type=int, default=1, help="tasks this process trains at once (0: API only)")
    serve.add_argument(
        "--data-root",
        action="append",
        default=None,
        help="folder clients may name data under (repeatable; default: the working directory)",
    )
    serve.add_argument(
        "--store",
        action="append",
        default=[],
        metavar="URL",
        help="a postgresql:// or hana:// store that search, ask and deployments may use (repeatable; "
        "embedded stores are folders under a data root)",
    )
    _add_timing(serve)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run fine-tuning tasks from a shared PostgreSQL (see `fintune serve`)")
    worker.add_argument("--database", help="PostgreSQL URL of the service (default: $FINTUNE_DATABASE_URL)")
    worker.add_argument("--concurrency", type=int, default=1, help="tasks trained at once (default 1)")
    _add_timing(worker)
    worker.set_defaults(func=cmd_worker)
    _add_tasks_parser(sub)


def _add_timing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heartbeat-s", type=float, default=5.0, help="worker heartbeat interval (default 5)")
    parser.add_argument(
        "--stalled-s",
        type=float,
        default=30.0,
        help="a worker silent this long is lost: its tasks go to another worker (default 30)",
    )


def _timing(args: argparse.Namespace) -> dict[str, float]:
    """Settings' heartbeat and stall timeout; a stall timeout within two heartbeats would hand back live tasks."""
    if args.heartbeat_s <= 0 or args.stalled_s < 2 * args.heartbeat_s:
        raise UsageError(
            f"--stalled-s ({args.stalled_s}) must be at least twice --heartbeat-s ({args.heartbeat_s}), which is > 0"
        )
    return {"heartbeat_s": args.heartbeat_s, "stalled_s": args.stalled_s}


def _add_tasks_parser(sub: argparse._SubParsersAction) -> None:
    tasks = sub.add_parser("tasks", help="submit and follow fine-tuning tasks on a `fintune serve` (JSON on stdout)")
    tsub = tasks.add_subparsers(dest="tasks_cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", default=None, help=f"API address (default ${SERVER_ENV}, else {DEFAULT_SERVER})")
    common.add_argument("--token", default=None, help="bearer token (default $FINTUNE_API_TOKEN, else the local one)")
    submit = tsub.add_parser("submit", parents=[common], help="submit a task; prints it")
    submit.add_argument("--kind", default="embedding", help="embedding (default), llm or a plugin's kind")
    submit.add_argument("--base-model", help="alias, folder or hub id")
    submit.add_argument("--data", help="training data, a path under one of the server's data roots")
    submit.add_argument("--run-file", help="run file under a data root (with --run)")
    submit.add_argument("--run", help="run name in --run-file")
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="run option (repeatable)")
    submit.add_argument("--idempotency-key", help="the same key and request give back the same task")
    submit.add_argument("--deploy", help="deployment name the model is for")
    submit.add_argument("--no-wait", action="store_true", help="refuse (409) instead of queueing behind a task "
                        "deploying to the same name")  # fmt: skip
    submit.set_defaults(func=cmd_tasks)
    listing = tsub.add_parser("list", parents=[common], help="tasks, newest first")
    listing.add_argument("--status", help="pending, running, succeeded, failed, canceled or refused")
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_tasks)
    one_task = {
        "show": "one task",
        "cancel": "cancel a task",
        "restart": "run a failed or canceled task again from its last checkpoint",
        "watch": "print its events (JSON lines) until it finishes",
    }
    for name, text in one_task.items():
        one = tsub.add_parser(name, parents=[common], help=text)
        one.add_argument("task_id", type=int)
        one.set_defaults(func=cmd_tasks)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def data_roots(given: list[str] | None) -> list[Path]:
    roots = [Path(r).resolve() for r in given or [os.getcwd()]]
    for root in roots:
        if not root.is_dir():
            raise InputNotFoundError(f"--data-root {root}: no such folder")
    return roots


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fintune.service.app import Settings, create_app
    from fintune.service.auth import configured_token, load_or_create_token
    from fintune.service.engine import database

    if not is_loopback(args.host) and configured_token() is None:
        raise UsageError(
            f"--host {args.host} is reachable from other machines: set FINTUNE_API_TOKEN first "
            "(or start once on 127.0.0.1 to generate a token)"
        )
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more (got {args.workers})")
    roots = data_roots(args.data_root)
    timing = _timing(args)
    with database(args.database) as url:
        settings = Settings(
            url,
            load_or_create_token(),
            fintune_home(),
            roots,
            workers=args.workers,
            token_required=not is_loopback(args.host),
            store_urls=list(args.store),
            **timing,
        )
        # uvicorn's own lines are third-party INFO, which fintune's logging hides: say where we listen
        log.info(
            "serving http://%s:%d (OpenAPI at /docs); data roots: %s", args.host, args.port, ", ".join(map(str, roots))
        )
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from fintune.service.engine import DATABASE_ENV

    url = args.database or os.environ.get(DATABASE_ENV)
    if not url:
        raise UsageError(f"a worker needs the service's database: --database URL or ${DATABASE_ENV}")
    if args.concurrency < 1:
        raise UsageError(f"--concurrency must be 1 or more (got {args.concurrency})")
    asyncio.run(run_worker(url, args.concurrency, **_timing(args)))
    return 0


async def run_worker(url: str, concurrency: int, heartbeat_s: float = 5.0, stalled_s: float = 30.0) -> None:
    from psycopg_pool import AsyncConnectionPool

    from fintune.service import db
    from fintune.service.app import Settings, worker_options
    from fintune.service.engine import make_app
    from fintune.service.recovery import watch_stalled

    settings = Settings(
        url, token="", home=fintune_home(), workers=concurrency, heartbeat_s=heartbeat_s, stalled_s=stalled_s
    )
    async with AsyncConnectionPool(url, open=False, min_size=1, max_size=4) as pool:
        await db.ensure_schema(pool)
        engine = make_app(url)
        await engine.open_async(pool)
        watcher = asyncio.create_task(watch_stalled(engine, pool, settings.stalled_s))
        try:
            await engine.run_worker_async(**worker_options(settings, f"worker@{socket.gethostname()}:{os.getpid()}"))
        finally:
            watcher.cancel()
            await engine.close_async()


def make_client(server: str, token: str | None) -> httpx.Client:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server, headers=headers, timeout=30)


def cmd_tasks(args: argparse.Namespace) -> int:
    from fintune.service.auth import configured_token

    server = args.server or os.environ.get(SERVER_ENV) or DEFAULT_SERVER
    with make_client(server, args.token or configured_token()) as client:
        if args.tasks_cmd == "watch":
            return _watch(client, args.task_id)
        method, path, payload = _request(args)
        _print(_call(client, method, path, payload))
    return 0


def _request(args: argparse.Namespace) -> tuple[str, str, Any]:
    """(HTTP method, path, body or query) of a `fintune tasks` command."""
    if args.tasks_cmd == "submit":
        from fintune.config.files import parse_overrides

        config = parse_overrides(args.set)
        config |= {k: v for k, v in (("run_file", args.run_file), ("run", args.run)) if v}
        body = {"kind": args.kind, "base_model": args.base_model, "data": args.data, "config": config,
                "idempotency_key": args.idempotency_key, "wait_on_conflict": not args.no_wait,
                "deploy": {"name": args.deploy} if args.deploy else None}  # fmt: skip
        return "POST", TASKS, body
    if args.tasks_cmd == "list":
        query = {"offset": args.offset, "limit": args.limit} | ({"status": args.status} if args.status else {})
        return "GET", TASKS, query
    if args.tasks_cmd == "show":
        return "GET", f"{TASKS}/{args.task_id}", None
    return "POST", f"{TASKS}/{args.task_id}/{args.tasks_cmd}", None  # cancel, restart


def _call(client: httpx.Client, method: str, path: str, payload: Any = None) -> Any:
    """The JSON answer; an error status becomes a one-line error with the server's reason."""
    import httpx

    try:
        response = client.get(path, params=payload) if method == "GET" else client.post(path, json=payload)
    except httpx.TransportError as exc:
        raise UsageError(f"cannot reach the service at {client.base_url}: {exc}") from None
    if response.status_code >= 400:
        raise UsageError(f"{method} {path}: {response.status_code} {_reason(response)}")
    return response.json()


def _reason(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text[:500]
    if isinstance(detail, list):  # 422: every problem with its field path
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail)
    return str(detail)


def _print(payload: Any) -> None:
    print(json.dumps(payload, indent=2))


def _watch(client: httpx.Client, task_id: int, poll_s: float = 2.0) -> int:
    """Events as JSON lines until the task finishes; exit 0 when it succeeded, 1 otherwise."""
    after = 0
    while True:
        events = _call(client, "GET", f"{TASKS}/{task_id}/events", {"after": after})["events"]
        for event in events:
            print(json.dumps(event), flush=True)
            after = event["id"]
        status = _call(client, "GET", f"{TASKS}/{task_id}")["status"]
        if status in FINISHED and not events:
            print(f"task {task_id}: {status}", file=sys.stderr)
            return 0 if status == "succeeded" else 1
        time.sleep(0 if events else poll_s)
