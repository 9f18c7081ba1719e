"""The job a worker runs: one fine-tuning task, from claim to a final status, with progress and cancel.

procrastinate's job carries only the task id; everything else is read from fintune_tasks. The job runs
in a worker thread (a sync task), so training does not block the worker's event loop (heartbeats,
abort polling)."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
from procrastinate.exceptions import JobAborted
from procrastinate.job_context import AbortReason, JobContext

from fintune.artifacts import work_dir
from fintune.config.schema import RECORDED
from fintune.errors import FintuneError
from fintune.service import db
from fintune.service.methods import FineTuningMethod, MethodResult, TrainCall, methods

log = logging.getLogger(__name__)

LOG_LEVEL = logging.INFO  # fintune's own records from this level are kept as task events


def artifacts_root(home: Path) -> Path:
    return home / "service" / "artifacts"


# procrastinate task options; engine.make_app registers `run_task` with them on each App (a Blueprint's
# tasks are renamed in place when added to an App, so one Blueprint cannot serve several Apps in a process).
TASK_OPTIONS: dict[str, Any] = {
    "name": "fintune.run_task",
    "pass_context": True,
    # Only a worker that stops mid-task (SIGTERM, shutdown) hands the job on; a failing trainer does not
    # retry by itself (a restart is the user's call). The next attempt resumes from the last checkpoint.
    "retry": procrastinate.RetryStrategy(max_attempts=5, retry_exceptions={JobAborted}),
}


def run_task(context: JobContext, task_id: int) -> None:
    extra = context.additional_context
    with psycopg.connect(extra["database_url"], autocommit=True) as conn:
        execute(conn, context, task_id, artifacts_root(Path(extra["home"])))


def execute(conn: psycopg.Connection[Any], context: JobContext, task_id: int, root: Path) -> None:
    from fintune.service.callbacks import TaskAborted, TaskCallback  # transformers: loaded by workers only

    row = db.claim(conn, task_id)
    if row is None:
        log.info("task %s is no longer pending (canceled?); nothing to run", task_id)
        return
    try:
        method = _method(row["kind"])
        config = method.config_class.model_validate(row["config"], context=RECORDED)
        output = root / str(task_id)
        if output.is_dir():  # written (atomically) by an attempt whose worker died before recording it
            recorded = _recorded_metrics(output) or {}
            result = MethodResult(recorded.get("before"), recorded.get("after"), recorded)
            _finish(conn, context, row, config, output, result)  # its deployment (if asked) still happens
            return
        _drop_partial_checkpoints(work_dir(output))
        progress = _Progress(conn, task_id)
        callback = TaskCallback(context.should_abort, progress)
        with _task_logs(conn, task_id):
            result = method.train(TrainCall(config, output, [callback], resume=True, options=row["options"] or {}))
    except TaskAborted:
        if context.abort_reason() == AbortReason.SHUTDOWN:
            db.finish(conn, task_id, "pending", error=None)  # the engine retries the job: next worker resumes
            raise JobAborted("worker stopping; the task goes back to pending") from None
        db.finish(conn, task_id, "canceled")
        raise JobAborted("canceled by request") from None
    except Exception as exc:
        db.finish(conn, task_id, "failed", error=_one_line(exc))
        raise
    _finish(conn, context, row, config, output, result)


def _finish(
    conn: psycopg.Connection[Any], context: JobContext, row: db.Row, config: Any, output: Path, result: MethodResult
) -> None:
    """Record the trained model (after its deployment, when the request asked for one)."""
    status, error, metrics = "succeeded", None, dict(result.metrics or {})
    deploy = (row["request"] or {}).get("deploy") or {}
    if deploy.get("as_blue"):
        status, error, metrics["deploy"] = _deploy(context, row, config, output, result)
    db.finish(
        conn,
        row["id"],
        status,
        error=error,
        artifact_path=str(output),
        metrics_before=result.metrics_before,
        metrics_after=result.metrics_after,
        metrics=metrics,
    )


def _deploy(
    context: JobContext, row: db.Row, config: Any, output: Path, result: Any
) -> tuple[str, str | None, dict[str, Any]]:
    """Gate, export, switch (fintune.service.deploy): the task's final status, error and deploy record."""
    from fintune.service.deploy import DeployCall, DeployRefused, deploy

    request = row["request"]["deploy"]
    call = DeployCall(
        context.additional_context["database_url"], row["id"], request["name"], float(request.get("tolerance", 0)),
        row["kind"], config, output, result.metrics_after, result.metrics_before,
    )  # fmt: skip
    try:
        return "succeeded", None, deploy(call)
    except DeployRefused as exc:
        return "refused", str(exc), exc.record
    except Exception as exc:  # the model is trained and kept: the task says why it is not live
        return "failed", f"trained, but not deployed: {_one_line(exc)}", {"deployed": False}


def _drop_partial_checkpoints(work: Path) -> None:
    """A worker killed while saving leaves a checkpoint without its trainer_state.json (the Trainer writes it
    after the weights and optimizer): resuming from it would fail, so the attempt resumes from the one before."""
    for checkpoint in work.glob("checkpoint-*"):
        if not (checkpoint / "trainer_state.json").is_file():
            log.warning("dropping %s: its save was cut short", checkpoint)
            shutil.rmtree(checkpoint, ignore_errors=True)


def _recorded_metrics(output: Path) -> dict[str, Any] | None:
    path = output / "fintune_metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _method(kind: str) -> FineTuningMethod:
    found = methods().get(kind)
    if found is None:
        raise FintuneError(f"fine-tuning method '{kind}' is not installed on this worker")
    return found


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, FintuneError) else f"{type(exc).__name__}: {text}"


class _Progress:
    """Progress reports from the training thread: the task's latest progress and an event."""

    def __init__(self, conn: psycopg.Connection[Any], task_id: int):
        self.conn = conn
        self.task_id = task_id

    def __call__(self, progress: dict[str, Any]) -> None:
        db.set_progress(self.conn, self.task_id, progress)


class _EventHandler(logging.Handler):
    """fintune's log records from the task's own thread, kept as `log` events."""

    def __init__(self, conn: psycopg.Connection[Any], task_id: int):
        super().__init__(LOG_LEVEL)
        self.conn = conn
        self.task_id = task_id
        self.thread = threading.get_ident()
        self._busy = False  # a record logged while writing one must not recurse

    def emit(self, record: logging.LogRecord) -> None:
        if self._busy or record.thread != self.thread or not record.name.startswith("fintune"):
            return
        self._busy = True
        try:
            db.add_event(self.conn, self.task_id, "log", {"level": record.levelname, "message": record.getMessage()})
        except Exception:  # a lost log line must not fail the training
            self.handleError(record)
        finally:
            self._busy = False


@contextmanager
def _task_logs(conn: psycopg.Connection[Any], task_id: int) -> Iterator[None]:
    handler = _EventHandler(conn, task_id)
    logger = logging.getLogger("fintune")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
