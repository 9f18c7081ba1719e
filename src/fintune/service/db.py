"""fintune's task tables and every query on them (all parameterised; no SQL is built from request text).

The API uses the async functions (one pool shared with procrastinate), a worker the sync ones on its
own connection. Status moves are single UPDATEs guarded by the expected current status, so two
processes racing on one task (a cancel and a worker's claim) cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from procrastinate.schema import SchemaManager
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

SCHEMA_LOCK = 7_301_515  # pg_advisory_xact_lock key: one process at a time creates the tables
DEPLOY_LOCK_PREFIX = "fintune-deploy:"

SCHEMA = """
CREATE TABLE IF NOT EXISTS fintune_tasks (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'canceled', 'refused')),
    attempt integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    idempotency_key text,
    request jsonb NOT NULL,
    request_hash text NOT NULL,
    config jsonb NOT NULL,
    options jsonb NOT NULL DEFAULT '{}',
    deploy_name text,
    job_id bigint,
    cancel_requested boolean NOT NULL DEFAULT false,
    progress jsonb,
    metrics_before jsonb,
    metrics_after jsonb,
    metrics jsonb,
    artifact_path text,
    error text
);
CREATE UNIQUE INDEX IF NOT EXISTS fintune_tasks_idempotency_key ON fintune_tasks (idempotency_key);
CREATE INDEX IF NOT EXISTS fintune_tasks_status ON fintune_tasks (status, id);
CREATE INDEX IF NOT EXISTS fintune_tasks_active_deploy ON fintune_tasks (deploy_name)
    WHERE status IN ('pending', 'running');
CREATE TABLE IF NOT EXISTS fintune_task_events (
    id bigserial PRIMARY KEY,
    task_id bigint NOT NULL REFERENCES fintune_tasks (id) ON DELETE CASCADE,
    at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL CHECK (kind IN ('status', 'progress', 'log')),
    data jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS fintune_task_events_task ON fintune_task_events (task_id, id);
"""

COLUMNS: LiteralString = (
    "id, kind, status, attempt, created_at, updated_at, started_at, finished_at, idempotency_key, request, "
    "request_hash, config, options, deploy_name, job_id, cancel_requested, progress, metrics_before, "
    "metrics_after, metrics, artifact_path, error"
)

Row = dict[str, Any]


@dataclass(frozen=True)
class NewTask:
    kind: str
    request: dict[str, Any]
    request_hash: str
    config: dict[str, Any]
    options: dict[str, Any]
    idempotency_key: str | None
    deploy_name: str | None
    wait_on_conflict: bool


@dataclass(frozen=True)
class Submitted:
    row: Row
    created: bool  # False: an earlier task with the same idempotency key
    blocked_by: int | None = None  # the active task deploying to the same name


async def ensure_schema(pool: AsyncConnectionPool) -> None:
    """procrastinate's schema (once per database) and fintune's tables, under an advisory lock so
    API processes and workers starting together do not race."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
        row = await cur.fetchone()
        if not (row and row[0]):
            await conn.execute(SchemaManager.get_schema())  # the library's own SQL
        await conn.execute(SCHEMA)


async def submit(pool: AsyncConnectionPool, new: NewTask) -> Submitted:
    """Insert a task, or find the one its idempotency key already names (the unique index decides, not a
    look-up: of twenty concurrent inserts one wins, the others see its row). With a deploy name, an
    advisory lock on it makes "is another task deploying there?" and the insert one atomic step."""
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        if new.deploy_name:
            await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (DEPLOY_LOCK_PREFIX + new.deploy_name,))
        await cur.execute(
            "INSERT INTO fintune_tasks (kind, status, idempotency_key, request, request_hash, config, options, "
            "deploy_name) VALUES (%s, 'pending', %s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT (idempotency_key) DO NOTHING RETURNING {COLUMNS}",
            (
                new.kind,
                new.idempotency_key,
                Jsonb(new.request),
                new.request_hash,
                Jsonb(new.config),
                Jsonb(new.options),
                new.deploy_name,
            ),
        )
        row = await cur.fetchone()
        if row is None:
            await cur.execute(f"SELECT {COLUMNS} FROM fintune_tasks WHERE idempotency_key = %s", (new.idempotency_key,))
            existing = await cur.fetchone()
            if existing is None:  # cannot happen: the conflicting row is committed before DO NOTHING returns
                raise RuntimeError(f"idempotency key {new.idempotency_key!r} conflicted but no task holds it")
            return Submitted(existing, created=False)
        blocked_by = None
        if new.deploy_name:
            await cur.execute(
                "SELECT id FROM fintune_tasks WHERE deploy_name = %s AND status IN ('pending', 'running') "
                "AND id <> %s ORDER BY id LIMIT 1",
                (new.deploy_name, row["id"]),
            )
            other = await cur.fetchone()
            blocked_by = other["id"] if other else None
        if blocked_by is not None and not new.wait_on_conflict:
            error = f"task {blocked_by} is already deploying to '{new.deploy_name}' (wait_on_conflict is false)"
            await cur.execute(
                "UPDATE fintune_tasks SET status = 'refused', error = %s, finished_at = now(), updated_at = now() "
                f"WHERE id = %s RETURNING {COLUMNS}",
                (error, row["id"]),
            )
            row = await cur.fetchone()
            assert row is not None  # the row inserted above, in this transaction
        await _event(conn, row["id"], "status", {"status": row["status"], "blocked_by": blocked_by})
        return Submitted(row, created=True, blocked_by=blocked_by)


async def _event(conn: psycopg.AsyncConnection[Any], task_id: int, kind: str, data: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO fintune_task_events (task_id, kind, data) VALUES (%s, %s, %s)", (task_id, kind, Jsonb(data))
    )


async def set_job(pool: AsyncConnectionPool, task_id: int, job_id: int) -> None:
    async with pool.connection() as conn:
        await conn.execute("UPDATE fintune_tasks SET job_id = %s WHERE id = %s", (job_id, task_id))


async def get(pool: AsyncConnectionPool, task_id: int) -> Row | None:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"SELECT {COLUMNS} FROM fintune_tasks WHERE id = %s", (task_id,))
        return await cur.fetchone()


async def list_tasks(pool: AsyncConnectionPool, status: str | None, offset: int, limit: int) -> tuple[list[Row], int]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        where: LiteralString = "WHERE status = %(status)s" if status else ""
        await cur.execute(f"SELECT count(*) AS n FROM fintune_tasks {where}", {"status": status})
        counted = await cur.fetchone()
        await cur.execute(
            f"SELECT {COLUMNS} FROM fintune_tasks {where} ORDER BY id DESC OFFSET %(offset)s LIMIT %(limit)s",
            {"status": status, "offset": offset, "limit": limit},
        )
        return await cur.fetchall(), int(counted["n"]) if counted else 0


async def events(pool: AsyncConnectionPool, task_id: int, after: int, limit: int) -> list[Row]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT id, at, kind, data FROM fintune_task_events WHERE task_id = %s AND id > %s ORDER BY id LIMIT %s",
            (task_id, after, limit),
        )
        return await cur.fetchall()


async def cancel(pool: AsyncConnectionPool, task_id: int) -> Row | None:
    """Cancel a pending task at once; mark a running one for cancelling (its worker finishes the move)."""
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "UPDATE fintune_tasks SET status = CASE WHEN status = 'pending' THEN 'canceled' ELSE status END, "
            "finished_at = CASE WHEN status = 'pending' THEN now() ELSE finished_at END, "
            "cancel_requested = true, updated_at = now() "
            f"WHERE id = %s AND status IN ('pending', 'running') RETURNING {COLUMNS}",
            (task_id,),
        )
        row = await cur.fetchone()
        if row is not None:
            await _event(conn, task_id, "status", {"status": row["status"], "cancel_requested": True})
        return row


async def restart(pool: AsyncConnectionPool, task_id: int) -> Row | None:
    """A failed or canceled task back to pending, as its next attempt (None: not in such a state)."""
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "UPDATE fintune_tasks SET status = 'pending', attempt = attempt + 1, error = NULL, finished_at = NULL, "
            "started_at = NULL, cancel_requested = false, updated_at = now() "
            f"WHERE id = %s AND status IN ('failed', 'canceled') RETURNING {COLUMNS}",
            (task_id,),
        )
        row = await cur.fetchone()
        if row is not None:
            await _event(conn, task_id, "status", {"status": "pending", "attempt": row["attempt"]})
        return row


async def live_workers(pool: AsyncConnectionPool, within_s: float) -> int:
    """procrastinate workers whose heartbeat is recent."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - make_interval(secs => %s)",
            (within_s,),
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


# --- the worker's side (sync, its own connection, autocommit) -------------------------------------------


def claim(conn: psycopg.Connection[Any], task_id: int) -> Row | None:
    """pending -> running; None when the task is no longer pending (canceled before it started)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "UPDATE fintune_tasks SET status = 'running', started_at = now(), updated_at = now() "
            f"WHERE id = %s AND status IN ('pending', 'running') AND NOT cancel_requested RETURNING {COLUMNS}",
            (task_id,),
        )
        row = cur.fetchone()
    if row is not None:
        add_event(conn, task_id, "status", {"status": "running", "attempt": row["attempt"]})
    return row


def add_event(conn: psycopg.Connection[Any], task_id: int, kind: str, data: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO fintune_task_events (task_id, kind, data) VALUES (%s, %s, %s)", (task_id, kind, Jsonb(data))
    )


def set_progress(conn: psycopg.Connection[Any], task_id: int, progress: dict[str, Any]) -> None:
    with conn.transaction():
        conn.execute(
            "UPDATE fintune_tasks SET progress = %s, updated_at = now() WHERE id = %s", (Jsonb(progress), task_id)
        )
        add_event(conn, task_id, "progress", progress)


def finish(
    conn: psycopg.Connection[Any],
    task_id: int,
    status: str,
    *,
    error: str | None = None,
    artifact_path: str | None = None,
    metrics_before: dict[str, Any] | None = None,
    metrics_after: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> None:
    """running -> a final status (or back to pending when a stopping worker hands the task on)."""
    ended = status != "pending"
    with conn.transaction():
        conn.execute(
            "UPDATE fintune_tasks SET status = %s, error = %s, artifact_path = %s, metrics_before = %s, "
            "metrics_after = %s, metrics = %s, updated_at = now(), "
            "finished_at = CASE WHEN %s THEN now() ELSE NULL END WHERE id = %s AND status = 'running'",
            (
                status,
                error,
                artifact_path,
                Jsonb(metrics_before) if metrics_before is not None else None,
                Jsonb(metrics_after) if metrics_after is not None else None,
                Jsonb(metrics) if metrics is not None else None,
                ended,
                task_id,
            ),
        )
        add_event(conn, task_id, "status", {"status": status, **({"error": error} if error else {})})


async def hand_back(pool: AsyncConnectionPool, task_id: int, reason: str) -> str | None:
    """A running task whose worker vanished: pending again (canceled when a cancel was asked for)."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "UPDATE fintune_tasks SET status = CASE WHEN cancel_requested THEN 'canceled' ELSE 'pending' END, "
            "finished_at = CASE WHEN cancel_requested THEN now() ELSE NULL END, updated_at = now() "
            "WHERE id = %s AND status = 'running' RETURNING status",
            (task_id,),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        await _event(conn, task_id, "status", {"status": row[0], "reason": reason})
        return str(row[0])


async def fail_pending(pool: AsyncConnectionPool, task_id: int, error: str) -> None:
    """A pending task whose job could not be queued: failed, so it can be restarted (not stuck pending)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "UPDATE fintune_tasks SET status = 'failed', error = %s, finished_at = now(), updated_at = now() "
            "WHERE id = %s AND status = 'pending'",
            (error, task_id),
        )
        await _event(conn, task_id, "status", {"status": "failed", "error": error})
