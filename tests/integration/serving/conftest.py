"""`fintune serve` on loopback in a thread (a real HTTP server), over a real PostgreSQL database per test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from fintune.service.app import Settings, create_app
from tests.integration.conftest import fresh_database

TOKEN = "serving-token-0123456789"


@pytest.fixture
def serving_db(pg_url, request) -> Iterator[str]:
    with fresh_database(pg_url, request.node.name, "srv_") as url:
        yield url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(settings: Settings) -> Iterator[str]:
    """The app served by uvicorn on 127.0.0.1 until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def serve(serving_db, tmp_path, monkeypatch) -> Callable[..., object]:
    """`with serve(roots, **settings) as url:` one API process (no worker unless asked) on loopback."""
    monkeypatch.setenv("FINTUNE_HOME", str(tmp_path / "home"))

    def make(roots: list[Path], **options: object):
        options.setdefault("workers", 0)
        options.setdefault("token_required", False)
        settings = Settings(serving_db, TOKEN, tmp_path / "home", roots, **options)  # type: ignore[arg-type]
        return running(settings)

    return make


def client(url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=120)
