"""What each store knows about its collections: the model that built them, and the aliases users search.

A user names a logical collection (`tenk`); its data live in versioned physical collections
(`tenk_v1`, `tenk_v2`, ...), and the alias `tenk` points at the live one. Re-embedding with a new model
fills a new version and then moves the alias in one statement (blue/green): searches never see a
half-built collection. The catalog is two small tables in the store's own database (SQLite beside the
embedded store), written with parameterised statements only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from fintune.errors import FintuneError, UsageError

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
Status = Literal["building", "ready", "retired"]


class StoreError(FintuneError, RuntimeError):
    """A store cannot be reached or used as asked: the message says why and what to do."""


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise UsageError(
            f"collection name {name!r}: use a letter then letters, digits or underscores (at most 48 characters)"
        )
    return name


@dataclass(frozen=True)
class CollectionInfo:
    name: str  # physical collection (table)
    logical: str
    version: int
    model: str
    dimension: int
    prefix: bool  # add_financial_prefix used when embedding
    status: Status
    created: str
    documents: int
    metadata_fields: tuple[str, ...]


@dataclass(frozen=True)
class Dialect:
    param: str  # DB-API placeholder
    text_type: str
    upsert_alias: str  # statement that sets alias -> collection atomically

    def sql(self, statement: str) -> str:
        return statement.replace("?", self.param)


SQLITE = Dialect(
    "?",
    "TEXT",
    "INSERT INTO fintune_aliases(alias, collection) VALUES (?, ?) "
    "ON CONFLICT(alias) DO UPDATE SET collection = excluded.collection",
)
POSTGRES = Dialect(
    "%s",
    "TEXT",
    "INSERT INTO fintune_aliases(alias, collection) VALUES (?, ?) "
    "ON CONFLICT(alias) DO UPDATE SET collection = EXCLUDED.collection",
)
HANA = Dialect("?", "NVARCHAR(1024)", "UPSERT fintune_aliases(alias, collection) VALUES (?, ?) WITH PRIMARY KEY")

COLUMNS = "name, logical, version, model, dimension, prefix, status, created, documents, metadata_fields"


class Catalog:
    """The catalog tables over any DB-API connection (sqlite3, psycopg, hdbcli)."""

    def __init__(self, connection: Any, dialect: Dialect, table_exists: Any):
        self.conn = connection
        self.dialect = dialect
        self._ensure_tables(table_exists)

    def _ensure_tables(self, table_exists: Any) -> None:
        t = self.dialect.text_type
        statements = {
            "fintune_collections": (
                f"CREATE TABLE fintune_collections (name {t} PRIMARY KEY, logical {t} NOT NULL, "
                f"version INTEGER NOT NULL, model {t} NOT NULL, dimension INTEGER NOT NULL, prefix INTEGER NOT NULL, "
                f"status {t} NOT NULL, created {t} NOT NULL, documents INTEGER NOT NULL, metadata_fields {t} NOT NULL)"
            ),
            "fintune_aliases": f"CREATE TABLE fintune_aliases (alias {t} PRIMARY KEY, collection {t} NOT NULL)",
        }
        for table, ddl in statements.items():
            create_table_once(self.conn, self.dialect.sql(ddl), partial(table_exists, table))

    def _execute(self, statement: str, params: tuple = ()) -> list[tuple]:
        return execute(self.conn, self.dialect.sql(statement), params)

    def _info(self, row: tuple) -> CollectionInfo:
        name, logical, version, model, dim, prefix, status, created, docs, fields = row
        return CollectionInfo(
            name,
            logical,
            int(version),
            model,
            int(dim),
            bool(prefix),
            status,
            created,
            int(docs),
            tuple(f for f in fields.split(",") if f),
        )

    def get(self, name: str) -> CollectionInfo | None:
        rows = self._execute(f"SELECT {COLUMNS} FROM fintune_collections WHERE name = ?", (name,))
        return self._info(rows[0]) if rows else None

    def versions(self, logical: str) -> list[CollectionInfo]:
        rows = self._execute(
            f"SELECT {COLUMNS} FROM fintune_collections WHERE logical = ? ORDER BY version", (logical,)
        )
        return [self._info(r) for r in rows]

    def all(self) -> list[CollectionInfo]:
        return [self._info(r) for r in self._execute(f"SELECT {COLUMNS} FROM fintune_collections ORDER BY name")]

    def alias(self, alias: str) -> str | None:
        rows = self._execute("SELECT collection FROM fintune_aliases WHERE alias = ?", (alias,))
        return rows[0][0] if rows else None

    def resolve(self, name: str) -> CollectionInfo:
        """The live collection behind an alias, or the named physical collection."""
        target = self.alias(name) or name
        info = self.get(target)
        building = [v.name for v in self.versions(name) if v.status == "building"]
        if info is None and building:
            raise StoreError(
                f"collection {name!r} is still being built ({building[-1]}); rerun its `fintune index` to complete it"
            )
        if info is None:
            known = sorted({i.logical for i in self.all()})
            raise StoreError(f"no collection {name!r} in this store (have: {', '.join(known) or 'none'})")
        return info

    def add(self, info: CollectionInfo) -> None:
        self._execute(
            f"INSERT INTO fintune_collections ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                info.name,
                info.logical,
                info.version,
                info.model,
                info.dimension,
                int(info.prefix),
                info.status,
                info.created,
                info.documents,
                ",".join(info.metadata_fields),
            ),
        )
        self.conn.commit()

    def mark(self, name: str, status: Status, documents: int | None = None) -> None:
        if documents is None:
            self._execute("UPDATE fintune_collections SET status = ? WHERE name = ?", (status, name))
        else:
            self._execute(
                "UPDATE fintune_collections SET status = ?, documents = ? WHERE name = ?", (status, documents, name)
            )
        self.conn.commit()

    def point(self, alias: str, collection: str) -> None:
        """Move `alias` to `collection` in one statement: readers see the old or the new, never neither."""
        self._execute(self.dialect.upsert_alias, (alias, collection))
        self.conn.commit()

    def remove(self, name: str) -> None:
        self._execute("DELETE FROM fintune_collections WHERE name = ?", (name,))
        self.conn.commit()


def create_table_once(conn: Any, ddl: str, exists: Callable[[], bool]) -> None:
    """Run `ddl` unless its table exists. Stores serialise their set-up under a lock; where a store has
    none that can exist before its tables (HANA), a concurrent creator's 'already exists' is no failure."""
    if exists():
        return
    try:
        execute(conn, ddl)
        conn.commit()
    except Exception:
        conn.rollback()
        if not exists():  # not a concurrent creator: a real failure
            raise


def execute(conn: Any, statement: str, params: tuple = ()) -> list[tuple]:
    """Run one parameterised statement on a DB-API connection; its rows, if it returns any."""
    cur = conn.cursor()
    try:
        cur.execute(statement, params)
        return list(cur.fetchall()) if cur.description else []
    finally:
        cur.close()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
