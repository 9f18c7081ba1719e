"""A real PostgreSQL 16 server with pgvector on loopback, for the tests and CI.

The binaries come from the `pgserver` package (PostgreSQL 16 + pgvector 0.6); the server runs as an
unprivileged user (PostgreSQL refuses root), listens on 127.0.0.1 only, and asks for passwords over TCP.

    python -m tests.pg_local start DIR   # prints the superuser URL; DIR holds data, socket, log
    python -m tests.pg_local stop DIR
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

STATE = "fintune-pg.json"


def _bin(name: str) -> str:
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / name)


def _run_as() -> dict:
    """Drop root for the server's processes; as any other user, run as that user."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("nobody")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(folder: str | Path) -> str:
    """Initialise (once) and start a server in `folder`; returns its superuser URL."""
    folder = Path(folder).resolve()
    state_file = folder / STATE
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if _is_running(folder):
            return state["url"]
    else:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        password = secrets.token_hex(12)
        (folder / "pw").write_text(password)
        state = {"password": password}
    as_user = _run_as()
    if as_user and not all(p.stat().st_mode & 0o001 for p in folder.parents):
        raise RuntimeError(f"{folder}: every folder above it must be enterable by 'nobody' (use one under /tmp)")
    if as_user:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, as_user["user"], as_user["group"])
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "HOME": str(folder)}
    data = folder / "data"
    if not data.is_dir():
        _run(
            [_bin("initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--auth-local=trust",
             "--auth-host=scram-sha-256", f"--pwfile={folder / 'pw'}"],
            env, as_user,
        )  # fmt: skip
    port = _free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    _run(
        [_bin("pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "start"], env, as_user
    )
    state["url"] = f"postgresql://postgres:{state['password']}@127.0.0.1:{port}/postgres"
    state["port"] = port
    state_file.write_text(json.dumps(state))
    return state["url"]


def _run(command: list[str], env: dict, as_user: dict) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env, **as_user)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed ({result.returncode}): {result.stderr or result.stdout}")


def _is_running(folder: Path) -> bool:
    result = subprocess.run([_bin("pg_ctl"), "-D", str(folder / "data"), "status"], capture_output=True, **_run_as())
    return result.returncode == 0


def stop(folder: str | Path) -> None:
    folder = Path(folder).resolve()
    if (folder / "data").is_dir() and _is_running(folder):
        subprocess.run(
            [_bin("pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "-w", "stop"],
            check=True, capture_output=True, **_run_as(),
        )  # fmt: skip


def psql(url: str, statement: str) -> None:
    """Run one administrative statement (role and database set-up in tests)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


if __name__ == "__main__":
    command, where = sys.argv[1], sys.argv[2]
    if command == "start":
        print(start(where))
    elif command == "stop":
        stop(where)
    else:
        sys.exit(f"usage: python -m tests.pg_local start|stop DIR (not {command!r})")
