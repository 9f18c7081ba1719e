"""The HTTP API: FastAPI over fintune's task tables and procrastinate's jobs (OpenAPI at /docs).

`create_app` opens one connection pool shared by the API and procrastinate, creates the tables,
and (with `workers` > 0) runs a procrastinate worker in the same event loop; training itself runs in
the worker's threads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import procrastinate
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from fintune import __version__
from fintune.config.files import ConfigError
from fintune.service import db
from fintune.service.auth import TokenCheck
from fintune.service.engine import RUN_TASK, make_app
from fintune.service.methods import methods
from fintune.service.models import ErrorBody, EventList, Health, Status, Task, TaskCreate, TaskList
from fintune.service.paths import PathRefused
from fintune.service.recovery import watch_stalled
from fintune.service.submission import build_config, problem_list
from fintune.serving.routes import router as serving_router

log = logging.getLogger(__name__)

PREFIX = "/v1/fine-tuning/tasks"
MAX_BODY_BYTES = 1 << 20  # a task request is a few hundred bytes; data travel by path, never in the body
BIGINT_MAX = 2**63 - 1  # ids and offsets are PostgreSQL bigints: a larger number is a 422, not a database error
TaskId = Annotated[int, PathParam(ge=1, le=BIGINT_MAX)]


@dataclass
class Settings:
    database_url: str
    token: str
    home: Path
    data_roots: list[Path] = field(default_factory=lambda: [Path.cwd()])
    workers: int = 1  # jobs the in-process worker runs at once; 0: API only
    # Worker timings: fetch/abort polling back up LISTEN/NOTIFY; the heartbeat marks the worker alive.
    poll_s: float = 1.0
    heartbeat_s: float = 5.0
    stalled_s: float = 30.0
    shutdown_grace_s: float = 5.0  # then running jobs are aborted and handed back to pending
    # False only on a loopback bind (`fintune serve` decides): then no route needs the token
    token_required: bool = True
    deployment_poll_s: float = 0.5  # how often this process looks for switches made elsewhere
    store_urls: list[str] = field(default_factory=list)  # store servers serving requests may name


def worker_options(settings: Settings, name: str) -> dict[str, Any]:
    """Options of a procrastinate worker (in `serve` and in `fintune worker`)."""
    return {
        "name": name,
        "concurrency": max(settings.workers, 1),
        "fetch_job_polling_interval": settings.poll_s,
        "abort_job_polling_interval": settings.poll_s,
        "update_heartbeat_interval": settings.heartbeat_s,
        "stalled_worker_timeout": settings.stalled_s,
        "shutdown_graceful_timeout": settings.shutdown_grace_s,
        "additional_context": {"database_url": settings.database_url, "home": str(settings.home)},
    }


class Service:
    """What the routes share: settings, the pool, the engine."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.tokens = TokenCheck(settings.token)
        self.pool = AsyncConnectionPool(settings.database_url, open=False, min_size=1, max_size=20)
        self.engine: procrastinate.App = make_app(settings.database_url)
        from fintune.service.worker import artifacts_root
        from fintune.serving.runtime import Runtime

        # clients may name models under the data roots and the service's own task outputs
        roots = [*settings.data_roots, artifacts_root(settings.home)]
        self.runtime = Runtime(settings.database_url, roots, settings.deployment_poll_s, settings.store_urls)

    async def defer(self, row: db.Row) -> None:
        task = self.engine.tasks[RUN_TASK]
        lock = f"deploy:{row['deploy_name']}" if row["deploy_name"] else None  # same deployment: one at a time
        try:
            job_id = await task.configure(lock=lock, queueing_lock=f"task:{row['id']}").defer_async(task_id=row["id"])
        except Exception as exc:  # the task row is committed: do not leave it pending with no job behind it
            await db.fail_pending(self.pool, row["id"], f"could not be queued: {exc}; restart it")
            raise
        await db.set_job(self.pool, row["id"], job_id)


def create_app(settings: Settings) -> FastAPI:
    service = Service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.pool.open(wait=True)
        await db.ensure_schema(service.pool)
        await service.engine.open_async(service.pool)
        await asyncio.to_thread(service.runtime.setup)
        running: list[asyncio.Task[None]] = [asyncio.create_task(_follow_deployments(service))]
        if settings.workers > 0:
            options = worker_options(settings, "serve")
            running.append(
                asyncio.create_task(service.engine.run_worker_async(install_signal_handlers=False, **options))
            )
            running.append(asyncio.create_task(watch_stalled(service.engine, service.pool, settings.stalled_s)))
        try:
            yield
        finally:
            for task in running:
                task.cancel()  # procrastinate's worker stops gracefully: see Settings.shutdown_grace_s
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await service.engine.close_async()
            await service.pool.close()
            service.runtime.close()

    app = FastAPI(title="fintune fine-tuning and serving", version=__version__, lifespan=lifespan)
    app.state.service = service
    app.middleware("http")(_limit_body)
    app.add_exception_handler(PathRefused, _path_refused)
    app.add_exception_handler(ConfigError, _config_error)

    @app.get("/healthz", tags=["health"], response_model=Health, responses={503: {"model": Health}})
    async def healthz() -> JSONResponse:
        """200 once the database answers and a worker's heartbeat is recent (no token needed)."""
        try:
            workers = await db.live_workers(service.pool, settings.stalled_s)
        except Exception as exc:  # any database failure means not healthy
            return JSONResponse({"status": "database unavailable", "error": str(exc)}, status_code=503)
        status = "ok" if workers else "no worker"
        return JSONResponse({"status": status, "workers": workers}, status_code=200 if workers else 503)

    app.include_router(_router(service))
    app.include_router(serving_router(service.runtime, _serving_auth(service)))
    return app


async def _follow_deployments(service: Service) -> None:
    """Poll for switches made by other processes (and workers): each process serves them within a poll."""
    while True:
        await asyncio.sleep(service.settings.deployment_poll_s)
        try:
            await asyncio.to_thread(service.runtime.refresh)
        except Exception as exc:  # a database blip: keep serving what is loaded, try again next poll
            log.warning("could not refresh deployments: %s", exc)


def _serving_auth(service: Service) -> Callable[..., Awaitable[None]]:
    async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        """On a loopback bind no token is needed (whatever an OpenAI client sends as its api_key passes);
        elsewhere the service's token."""
        if not service.settings.token_required:
            return
        presented = credentials.credentials if credentials else None
        if not service.tokens.matches(presented):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return check


async def _limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
    if (
        length is None
        and request.method in ("POST", "PUT", "PATCH")
        and "chunked" in request.headers.get("transfer-encoding", "")
    ):
        return JSONResponse({"detail": "send Content-Length (chunked bodies are not accepted)"}, status_code=411)
    return await call_next(request)


async def _path_refused(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


async def _config_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConfigError)
    return JSONResponse({"detail": problem_list(exc, getattr(request.state, "run_name", None))}, status_code=422)


_bearer = HTTPBearer(auto_error=False)


def _router(service: Service) -> APIRouter:
    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if not service.settings.token_required:  # a loopback bind: this machine's users only
            return
        if credentials is None or not service.tokens.matches(credentials.credentials):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    conflict: dict[int | str, dict[str, Any]] = {409: {"model": ErrorBody}}
    # OpenAPI links: what a client (and schemathesis' stateful tests) can call with a created task's id
    by_id = {"task_id": "$response.body#/id"}
    links = {
        name: {"operationId": operation, "parameters": by_id}
        for name, operation in (("GetTask", "get_task"), ("TaskEvents", "task_events"),
                                ("CancelTask", "cancel_task"), ("RestartTask", "restart_task"))
    }  # fmt: skip
    router = APIRouter(prefix=PREFIX, tags=["tasks"], dependencies=[Depends(require_token)])

    @router.post(
        "",
        status_code=201,
        operation_id="submit_task",
        response_model=Task,
        responses={201: {"links": links}, 200: {"model": Task, "links": links}, 400: {"model": ErrorBody}, **conflict},
    )
    async def submit(body: TaskCreate, request: Request, response: Response) -> Any:
        """Submit a task: 201 new, 200 the task an earlier request with the same idempotency key made,
        409 a key reused for another request or a refused deployment conflict."""
        method = methods().get(body.kind)
        if method is None:
            known = ", ".join(sorted(methods()))
            problem = {"loc": ["body", "kind"], "msg": f"unknown kind '{body.kind}' (known: {known})"}
            return JSONResponse({"detail": [{**problem, "type": "value_error"}]}, status_code=422)
        request.state.run_name = body.config.get("run")
        config, options = build_config(method, body, service.settings.data_roots)
        new = db.NewTask(
            kind=body.kind,
            request=body.model_dump(mode="json"),
            request_hash=body.request_hash(),
            config=config,
            options=options,
            idempotency_key=body.idempotency_key,
            deploy_name=body.deploy.name if body.deploy else None,
            wait_on_conflict=body.wait_on_conflict,
        )
        submitted = await db.submit(service.pool, new)
        row = submitted.row
        if not submitted.created:
            if row["request_hash"] != new.request_hash:
                detail = f"idempotency key '{body.idempotency_key}' was used for task {row['id']} with another request"
                return _conflict(detail, row)
            if row["status"] == "refused":
                return _conflict(row["error"] or "refused", row)
            response.status_code = 200
            return to_task(row)
        if row["status"] == "refused":
            return _conflict(row["error"] or "refused", row)
        await service.defer(row)
        return to_task(await _get(service, row["id"]))

    @router.get("", operation_id="list_tasks")
    async def list_tasks(
        status: Status | None = None,
        offset: Annotated[int, Query(ge=0, le=BIGINT_MAX)] = 0,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> TaskList:
        rows, total = await db.list_tasks(service.pool, status, offset, limit)
        return TaskList(tasks=[to_task(r) for r in rows], total=total, offset=offset, limit=limit)

    @router.get("/{task_id}", operation_id="get_task", responses={404: {"model": ErrorBody}})
    async def get_task(task_id: TaskId) -> Task:
        return to_task(await _get(service, task_id))

    @router.post(
        "/{task_id}/cancel",
        operation_id="cancel_task",
        response_model=Task,
        responses={202: {"model": Task}, 404: {"model": ErrorBody}, **conflict},
    )
    async def cancel(task_id: TaskId, response: Response) -> Any:
        """Cancel: a pending task at once (200), a running one at its next training step (202)."""
        row = await db.cancel(service.pool, task_id)
        if row is None:
            current = await _get(service, task_id)
            return _conflict(f"task {task_id} is {current['status']}: nothing to cancel", current)
        if row["job_id"] is not None:
            await service.engine.job_manager.cancel_job_by_id_async(row["job_id"], abort=True)
        response.status_code = 200 if row["status"] == "canceled" else 202
        return to_task(row)

    @router.post(
        "/{task_id}/restart",
        operation_id="restart_task",
        response_model=Task,
        responses={404: {"model": ErrorBody}, **conflict},
    )
    async def restart(task_id: TaskId) -> Any:
        """A failed or canceled task runs again as its next attempt, from its last checkpoint."""
        row = await db.restart(service.pool, task_id)
        if row is None:
            current = await _get(service, task_id)
            return _conflict(f"task {task_id} is {current['status']}: only failed or canceled tasks restart", current)
        await service.defer(row)
        return to_task(await _get(service, task_id))

    @router.get("/{task_id}/events", operation_id="task_events", responses={404: {"model": ErrorBody}})
    async def events(
        task_id: TaskId,
        after: Annotated[int, Query(ge=0, le=BIGINT_MAX, description="only events with a larger id")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> EventList:
        await _get(service, task_id)
        rows = await db.events(service.pool, task_id, after, limit)
        return EventList.model_validate({"task_id": task_id, "events": rows})

    return router


async def _get(service: Service, task_id: int) -> db.Row:
    row = await db.get(service.pool, task_id)
    if row is None:
        raise HTTPException(404, f"no task {task_id}")
    return row


def _conflict(detail: str, row: db.Row) -> JSONResponse:
    return JSONResponse({"detail": detail, "task": to_task(row).model_dump(mode="json")}, status_code=409)


def to_task(row: db.Row) -> Task:
    progress = row.get("progress")
    if progress:
        rest = {k: v for k, v in progress.items() if k not in ("step", "total", "loss")}
        progress = {
            "step": progress.get("step"),
            "total": progress.get("total"),
            "loss": progress.get("loss"),
            "metrics": rest,
        }
    return Task.model_validate({**row, "progress": progress})
