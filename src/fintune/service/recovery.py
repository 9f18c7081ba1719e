"""Tasks of a worker that died (SIGKILL, lost machine): found through procrastinate's worker heartbeats
and handed to another worker, which resumes from the last checkpoint.

procrastinate finds such jobs (`get_stalled_jobs`) but leaves retrying them to the application; every
worker runs this pass periodically, and a job retried twice at once is refused by the engine's own
status check, so only one retry happens."""

from __future__ import annotations

import asyncio
import logging

import procrastinate
from psycopg_pool import AsyncConnectionPool

from fintune.service import db
from fintune.service.engine import RUN_TASK

log = logging.getLogger(__name__)

REASON = "its worker stopped sending heartbeats; another worker resumes it from the last checkpoint"


async def recover_stalled(engine: procrastinate.App, pool: AsyncConnectionPool, stalled_s: float) -> list[int]:
    """One pass: the ids of the tasks handed back."""
    jobs = await engine.job_manager.get_stalled_jobs(task_name=RUN_TASK, seconds_since_heartbeat=stalled_s)
    recovered = []
    for job in jobs:
        try:
            await engine.job_manager.retry_job(job)
        except Exception as exc:  # another worker's pass retried it first
            log.debug("stalled job %s not retried here: %s", job.id, exc)
            continue
        task_id = int(str(job.task_kwargs["task_id"]))
        status = await db.hand_back(pool, task_id, REASON)
        log.warning("task %s: worker %s lost; task %s", task_id, job.worker_id, status or "already finished")
        recovered.append(task_id)
    return recovered


async def watch_stalled(engine: procrastinate.App, pool: AsyncConnectionPool, stalled_s: float) -> None:
    """Run `recover_stalled` every half of `stalled_s`, for as long as the worker runs."""
    while True:
        try:
            await recover_stalled(engine, pool, stalled_s)
        except Exception as exc:  # a database hiccup must not stop the worker; the next pass retries
            log.warning("stalled-task check failed: %s", exc)
        await asyncio.sleep(stalled_s / 2)
