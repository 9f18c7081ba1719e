"""The embedded PostgreSQL starts as root from binaries only root can reach (a clone under /root)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from fintune import pgserver_local as pl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="as any other user the server runs as that user: nothing to hide"),
]


@pytest.fixture
def root_only_install():
    """pgserver's binaries copied, in their site-packages layout, into a 0700 folder under /root."""
    install = pl.pgserver_install()
    site = install.parent.parent
    locked = Path(tempfile.mkdtemp(prefix="fintune-pgtest-", dir="/root"))
    copy = locked / "site" / "pgserver" / "pginstall"
    for part in pl.PARTS:
        shutil.copytree(install / part, copy / part, symlinks=True)
    shutil.copytree(site / "pgserver.libs", locked / "site" / "pgserver.libs", symlinks=True)
    yield copy
    shutil.rmtree(locked, ignore_errors=True)


@pytest.fixture
def scratch():
    """Cache and data folders under /tmp itself (pytest's temporary folders are private to root)."""
    made = [Path(tempfile.mkdtemp(prefix="fintune-pgtest-")) for _ in range(2)]
    yield made
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def test_server_starts_from_root_only_binaries(root_only_install, scratch, monkeypatch):
    import psycopg

    nobody = pwd.getpwnam(pl.SERVER_USER)
    with pytest.raises(PermissionError):  # the failure on a clone under /root
        subprocess.run([root_only_install / "bin" / "initdb", "--version"], user=nobody.pw_uid, check=False)
    monkeypatch.setattr(pl, "pgserver_install", lambda: root_only_install)
    cache, folder = scratch  # as .ci/run and the store tests: fresh mkdtemp folders
    url = pl.start(folder, cache)
    try:
        assert pl.server_binaries(pl.server_user(), cache).is_relative_to(cache)
        assert pl.start(folder, cache) == url  # already running: same server
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            conn.execute("CREATE EXTENSION vector")
            assert conn.execute("SELECT '[1,2]'::vector <-> '[1,3]'::vector").fetchone() == (1.0,)
    finally:
        pl.stop(folder, cache)
    assert not pl.is_running(folder, cache)
    with pytest.raises(pl.PgServerError, match="who cannot enter /root"):
        pl.start(root_only_install.parent / "data-under-root", cache)
