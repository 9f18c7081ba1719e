"""Named deployments in the service's PostgreSQL: which model version is live, which came before.

A deployment binds model versions and, for embeddings, the store collections each version built. The
live pointer (with the previous one, for rollback) is one row: a switch is one guarded UPDATE, so the
model and its collections move together, and every API process reads them together. All statements are
parameterised; names from requests are values, never SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Kind = Literal["embedding", "llm"]
CHANNEL = "fintune_deployments"  # NOTIFY channel: payload is the deployment's name
SCHEMA_LOCK = 7_301_516

SCHEMA = """
CREATE TABLE IF NOT EXISTS fintune_deployments (
    name text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('embedding', 'llm')),
    live text NOT NULL,
    previous text,
    bindings jsonb NOT NULL DEFAULT '[]',
    generation bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS fintune_deployment_versions (
    deployment text NOT NULL,
    version text NOT NULL,
    model text NOT NULL,
    adapter text,
    dimension integer,
    collections jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL CHECK (status IN ('staging', 'ready', 'failed')),
    error text,
    metrics jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment, version)
);
"""


@dataclass(frozen=True)
class Binding:
    """A store collection the deployment's embedding versions serve, and the corpus it is rebuilt from."""

    store: str
    collection: str  # logical name (the store's alias)
    corpus: str | None = None  # re-embedded on a switch to a model without a built version
    prefix: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"store": self.store, "collection": self.collection, "corpus": self.corpus, "prefix": self.prefix}


@dataclass(frozen=True)
class Version:
    deployment: str
    version: str
    model: str
    adapter: str | None
    dimension: int | None
    collections: dict[str, str]  # logical -> physical collection this version built
    status: str
    error: str | None = None
    metrics: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Version:
        return cls(
            row["deployment"],
            row["version"],
            row["model"],
            row["adapter"],
            row["dimension"],
            dict(row["collections"] or {}),
            row["status"],
            row["error"],
            row["metrics"],
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "model": self.model,
            "adapter": self.adapter,
            "dimension": self.dimension,
            "collections": self.collections,
            "status": self.status,
            "error": self.error,
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class Deployment:
    name: str
    kind: Kind
    live: Version
    previous: Version | None
    bindings: tuple[Binding, ...]
    generation: int
    versions: tuple[Version, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "live": self.live.as_json(),
            "previous": self.previous.as_json() if self.previous else None,
            "bindings": [b.as_json() for b in self.bindings],
            "generation": self.generation,
            "versions": [v.as_json() for v in self.versions],
        }


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        cur.execute(SCHEMA)


def _versions(conn: psycopg.Connection[Any], name: str) -> dict[str, Version]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM fintune_deployment_versions WHERE deployment = %s ORDER BY created_at", (name,))
        return {r["version"]: Version.of(r) for r in cur.fetchall()}


def _deployment(row: dict[str, Any], versions: dict[str, Version]) -> Deployment:
    bindings = tuple(Binding(**b) for b in row["bindings"] or [])
    previous = versions.get(row["previous"]) if row["previous"] else None
    return Deployment(
        row["name"], row["kind"], versions[row["live"]], previous, bindings, row["generation"], tuple(versions.values())
    )


def get(conn: psycopg.Connection[Any], name: str) -> Deployment | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM fintune_deployments WHERE name = %s", (name,))
        row = cur.fetchone()
    return _deployment(row, _versions(conn, name)) if row else None


def all_deployments(conn: psycopg.Connection[Any]) -> list[Deployment]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM fintune_deployments ORDER BY name")
        rows = cur.fetchall()
    return [_deployment(r, _versions(conn, r["name"])) for r in rows]


def generations(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Each deployment's change counter: what an API process polls to see a switch."""
    with conn.cursor() as cur:
        cur.execute("SELECT name, generation FROM fintune_deployments")
        return {name: int(gen) for name, gen in cur.fetchall()}


def create(conn: psycopg.Connection[Any], name: str, kind: Kind, version: Version, bindings: list[Binding]) -> bool:
    """Insert the deployment with `version` live; False when the name is taken."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO fintune_deployments (name, kind, live, bindings) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name) DO NOTHING RETURNING name",
            (name, kind, version.version, Jsonb([b.as_json() for b in bindings])),
        )
        if cur.fetchone() is None:
            return False
        _insert_version(cur, version)
        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, name))
    return True


def _insert_version(cur: psycopg.Cursor[Any], v: Version) -> None:
    cur.execute(
        "INSERT INTO fintune_deployment_versions (deployment, version, model, adapter, dimension, collections, "
        "status, error, metrics) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (deployment, version) DO UPDATE SET model = EXCLUDED.model, adapter = EXCLUDED.adapter, "
        "dimension = EXCLUDED.dimension, collections = EXCLUDED.collections, status = EXCLUDED.status, "
        "error = EXCLUDED.error, metrics = EXCLUDED.metrics, created_at = now()",
        (
            v.deployment,
            v.version,
            v.model,
            v.adapter,
            v.dimension,
            Jsonb(v.collections),
            v.status,
            v.error,
            Jsonb(v.metrics) if v.metrics is not None else None,
        ),
    )


def put_version(conn: psycopg.Connection[Any], version: Version) -> None:
    """Record a version (staging while it is built, then ready or failed); peers preload staged ones."""
    with conn.transaction(), conn.cursor() as cur:
        _insert_version(cur, version)
        # a new generation: every API process re-reads the deployment (and preloads a staged model)
        cur.execute(
            "UPDATE fintune_deployments SET generation = generation + 1, updated_at = now() WHERE name = %s",
            (version.deployment,),
        )
        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, version.deployment))


def move_live(conn: psycopg.Connection[Any], name: str, expected_live: str, version: str) -> bool:
    """Make `version` live and the current one previous, in one UPDATE guarded by the live version read
    before the switch began: a concurrent switch makes this one fail instead of silently overwriting it."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "UPDATE fintune_deployments SET previous = live, live = %s, generation = generation + 1, "
            "updated_at = now() WHERE name = %s AND live = %s RETURNING name",
            (version, name, expected_live),
        )
        moved = cur.fetchone() is not None
        if moved:
            cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, name))
    return moved
