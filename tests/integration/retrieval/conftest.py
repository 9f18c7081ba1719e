"""A real PostgreSQL + pgvector server for the store tests: FINTUNE_PG_URL if set, else one started here."""

from __future__ import annotations

import pytest

from tests import pg_local


@pytest.fixture
def pg_database(pg_url, request) -> str:
    """A fresh database per test (pgvector enabled by the store itself), dropped afterwards."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]", "_", request.node.name.lower())[:50]
    pg_local.psql(pg_url, f'DROP DATABASE IF EXISTS "{name}"')
    pg_local.psql(pg_url, f'CREATE DATABASE "{name}"')
    yield pg_url.rsplit("/", 1)[0] + f"/{name}"
    pg_local.psql(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
