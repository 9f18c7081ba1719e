"""The job engine (procrastinate on PostgreSQL) and where its database comes from.

One code path for both set-ups: a URL (`--database`, FINTUNE_DATABASE_URL) that API processes and
workers on several machines share, or, with neither, an embedded PostgreSQL under $FINTUNE_HOME that
`fintune serve` starts and stops (fintune.pgserver_local)."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import procrastinate

from fintune import pgserver_local
from fintune.paths import fintune_home
from fintune.service.worker import TASK_OPTIONS, run_task

log = logging.getLogger(__name__)

DATABASE_ENV = "FINTUNE_DATABASE_URL"
RUN_TASK = TASK_OPTIONS["name"]
SHARED_PG_ROOT = Path("/var/tmp")


def make_app(url: str) -> procrastinate.App:
    """A procrastinate App with fintune's task; its pool is opened by the caller (API or worker)."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    app.task(**TASK_OPTIONS)(run_task)
    return app


def embedded_folder(home: Path | None = None) -> Path:
    """$FINTUNE_HOME/service-pg, unless the server's unprivileged user (as root: 'nobody') cannot enter
    $FINTUNE_HOME (a home only root can enter, the usual container): then a folder under /var/tmp named
    after $FINTUNE_HOME, so the same home always finds the same database."""
    home = (home or fintune_home()).resolve()
    preferred = home / "service-pg"
    run_as = pgserver_local.server_user()
    if run_as is None or pgserver_local.blocked_at(preferred.parent) is None:
        return preferred
    key = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return SHARED_PG_ROOT / f"fintune-service-pg-{key}"


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """The URL given, else FINTUNE_DATABASE_URL, else an embedded server started here and stopped on exit."""
    url = url or os.environ.get(DATABASE_ENV)
    if url:
        yield url
        return
    folder = embedded_folder()
    if folder.parent != fintune_home().resolve():
        log.info("$FINTUNE_HOME is closed to PostgreSQL's user '%s': its data live in %s", "nobody", folder)
    already = pgserver_local.is_running(folder) if (folder / pgserver_local.STATE).is_file() else False
    embedded = pgserver_local.start(folder)
    log.info("embedded PostgreSQL in %s", folder)
    try:
        yield embedded
    finally:
        if not already:  # another fintune process started it: leave it to that one
            pgserver_local.stop(folder)
