"""An embedded PostgreSQL + pgvector server in a folder, from the binaries the `pgserver` wheel ships.

Used by the tests and CI (tests/pg_local.py) and meant for a service that keeps its database under
$FINTUNE_HOME. The server listens on 127.0.0.1 only and asks for a password over TCP.

PostgreSQL refuses to run as root, so as root the server runs as 'nobody', who must reach both the
binaries and the folder. A project cloned under a root-only folder (/root/project) hides its .venv's
binaries from that user: they are then copied once per pgserver version into a root-owned, world-readable
cache (/var/tmp/fintune-pgserver). The folder itself cannot be moved: one under a root-only folder is
refused in one line that names the folder in the way.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import Any

from fintune.errors import FintuneError

STATE = "fintune-pg.json"
SERVER_USER = "nobody"
DEFAULT_CACHE = Path("/var/tmp/fintune-pgserver")
PARTS = ("bin", "lib", "share")  # what the server runs from; include/ only serves extension builds
TIMEOUT_S = 120


class PgServerError(FintuneError, RuntimeError):
    """The local server cannot start or stop here; the message says why in one line."""


@dataclass(frozen=True)
class RunAs:
    """The unprivileged user the server's processes run as."""

    name: str
    uid: int
    gid: int

    def kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def server_user() -> RunAs | None:
    """'nobody' when running as root (PostgreSQL refuses root); None: run as the current user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        msg = f"running as root, PostgreSQL needs an unprivileged user and '{SERVER_USER}' is missing"
        raise PgServerError(msg) from None
    return RunAs(SERVER_USER, entry.pw_uid, entry.pw_gid)


def blocked_at(path: Path) -> Path | None:
    """The first existing folder from / down to `path` that other users cannot enter, if any."""
    for folder in [*reversed(path.parents), path]:
        if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def pgserver_install() -> Path:
    """pgserver's install tree (bin, lib, share), without importing the package."""
    spec = util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise PgServerError("the 'pgserver' package is not installed (it ships the PostgreSQL binaries)")
    return Path(spec.origin).parent / "pginstall"


def server_binaries(run_as: RunAs | None, cache: Path = DEFAULT_CACHE) -> Path:
    """The bin folder the server's user can run: pgserver's own, else a cached copy of its install."""
    install = pgserver_install()
    if run_as is None or blocked_at(install / "bin") is None:
        return install / "bin"
    return cached_install(install, cache, f"pgserver-{metadata.version('pgserver')}") / "bin"


def cached_install(install: Path, cache: Path, key: str) -> Path:
    """A copy of `install` under cache/key that every user can read and run; made once, atomically.

    The wheel's binaries find libpq at $ORIGIN/../../../pgserver.libs, so the copy keeps the layout from
    site-packages down: cache/key/pgserver/pginstall/{bin,lib,share} beside cache/key/pgserver.libs.
    """
    site = install.parent.parent
    inside = install.relative_to(site)
    _check_cache(cache)
    target = cache / key
    if (target / inside).is_dir():
        return target / inside
    partial = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache))
    try:
        for part in PARTS:
            shutil.copytree(install / part, partial / inside / part, symlinks=True)
        libs = site / f"{install.parent.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        _open_to_all(partial)
        try:
            partial.rename(target)
        except OSError:
            if not (target / inside).is_dir():  # else another process finished the same copy first
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target / inside


def _check_cache(cache: Path) -> None:
    """Create the cache; refuse one another user could write to (they would choose what the server runs)."""
    cache.mkdir(parents=True, exist_ok=True)
    info = cache.stat()
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PgServerError(f"{cache}: binary cache not owned by this user or writable by others; pass another one")
    cache.chmod(0o755)
    blocked = blocked_at(cache)
    if blocked is not None:
        raise PgServerError(f"{cache}: '{SERVER_USER}' cannot enter {blocked} to run the binaries; pass another cache")


def _open_to_all(root: Path) -> None:
    """Readable by all; folders and owner-executable files runnable by all."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        runnable = path.is_dir() or mode & stat.S_IXUSR
        path.chmod(stat.S_IMODE(mode) | 0o444 | (0o111 if runnable else 0))


def _prepare_folder(folder: Path, run_as: RunAs | None) -> dict[str, Any]:
    """The folder's state (created with a new password once), the folder owned by the server's user."""
    state_file = folder / STATE
    if state_file.is_file():
        return json.loads(state_file.read_text())
    if folder.exists() and any(folder.iterdir()):
        raise PgServerError(f"{folder}: not empty and not a fintune PostgreSQL folder (no {STATE}); pass a new one")
    _check_reachable(folder, run_as)  # before creating anything
    folder.mkdir(parents=True, exist_ok=True)
    _check_reachable(folder, run_as)  # the folders just made, under a strict umask
    if run_as is not None:
        os.chown(folder, run_as.uid, run_as.gid)
    folder.chmod(0o700)
    state = {"password": secrets.token_hex(16)}
    _write_state(folder, state)
    return state


def _check_reachable(folder: Path, run_as: RunAs | None) -> None:
    """The server's user must pass through every folder above `folder` (it owns `folder` itself)."""
    blocked = blocked_at(folder.parent)
    if run_as is not None and blocked is not None:
        mode = stat.S_IMODE(blocked.stat().st_mode)
        raise PgServerError(
            f"{folder}: the server runs as '{run_as.name}', who cannot enter {blocked} (mode {mode:o}); "
            f"use a folder under /tmp or /var/tmp, or `setfacl -m u:{run_as.name}:x {blocked}`"
        )


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    path = folder / STATE
    path.touch(mode=0o600)
    path.write_text(json.dumps(state))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(command: list[str], folder: Path, run_as: RunAs | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "HOME": str(folder)}
    who = run_as.kwargs() if run_as else {}
    try:
        return subprocess.run(
            command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=TIMEOUT_S, **who
        )
    except OSError as exc:
        user = run_as.name if run_as else "this user"
        raise PgServerError(f"cannot run {command[0]} as {user}: {exc.strerror}") from exc


def _check(result: subprocess.CompletedProcess[str], log: Path | None = None) -> None:
    if result.returncode == 0:
        return
    lines = (result.stderr or result.stdout).strip().splitlines()
    if log is not None and log.is_file():
        lines += log.read_text(errors="replace").strip().splitlines()[-1:]
    why = " | ".join(line.strip() for line in lines[-3:] if line.strip())
    raise PgServerError(f"{Path(result.args[0]).name} failed ({result.returncode}): {why}")


def _initdb(bin_dir: Path, folder: Path, password: str, run_as: RunAs | None) -> None:
    data = folder / "data"
    shutil.rmtree(data, ignore_errors=True)  # an earlier initdb that did not finish
    pw = folder / "pw"
    pw.touch(mode=0o600)
    pw.write_text(password)
    if run_as is not None:
        os.chown(pw, run_as.uid, run_as.gid)
    try:
        command = [
            str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
            "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pw}",
        ]  # fmt: skip
        _check(_run(command, folder, run_as))
    finally:
        pw.unlink(missing_ok=True)


def _status(bin_dir: Path, folder: Path, run_as: RunAs | None) -> bool:
    if not (folder / "data" / "PG_VERSION").is_file():
        return False
    return _run([str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "status"], folder, run_as).returncode == 0


def is_running(folder: str | Path, cache: Path = DEFAULT_CACHE) -> bool:
    folder = Path(folder).resolve()
    run_as = server_user()
    return _status(server_binaries(run_as, cache), folder, run_as)


def start(folder: str | Path, cache: Path = DEFAULT_CACHE) -> str:
    """Initialise (once) and start a server in `folder`; returns its superuser URL. Idempotent."""
    folder = Path(folder).resolve()
    run_as = server_user()
    state = _prepare_folder(folder, run_as)
    bin_dir = server_binaries(run_as, cache)
    if "url" in state and _status(bin_dir, folder, run_as):
        return str(state["url"])
    if not (folder / "data" / "PG_VERSION").is_file():
        _initdb(bin_dir, folder, state["password"], run_as)
    port = _free_port()
    options = f"-p {port} -k {shlex.quote(str(folder))} -c listen_addresses=127.0.0.1"
    log = folder / "server.log"
    command = [str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(log), "-o", options, "-w", "start"]
    _check(_run(command, folder, run_as), log)
    state.update(url=f"postgresql://postgres:{state['password']}@127.0.0.1:{port}/postgres", port=port)
    _write_state(folder, state)
    return str(state["url"])


def stop(folder: str | Path, cache: Path = DEFAULT_CACHE) -> None:
    """Stop the server in `folder` (fast shutdown); nothing to do when it is not running."""
    folder = Path(folder).resolve()
    run_as = server_user()
    bin_dir = server_binaries(run_as, cache)
    if _status(bin_dir, folder, run_as):
        command = [str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "-w", "stop"]
        _check(_run(command, folder, run_as))
