"""Vector stores behind one interface, chosen by the `--store` value.

- a filesystem path: the embedded store (LanceDB, no server);
- `postgresql://user:password@host:port/db`: PostgreSQL with pgvector;
- `hana://user:password@host:port/?schema=S`, or `hana` to read the HANA_* variables: SAP HANA Cloud.
"""

from __future__ import annotations

from fintune.errors import UsageError
from fintune.retrieval.stores.base import Hit, Row, Store


def open_store(url: str) -> Store:
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from fintune.retrieval.stores.pgvector import PgVectorStore

        return PgVectorStore(url)
    if url == "hana" or url.startswith("hana://"):
        from fintune.retrieval.stores.hana import HanaStore

        return HanaStore(url)
    if "://" in url:
        raise UsageError(f"unknown store {url!r}: give a folder, postgresql://... or hana://...")
    from fintune.retrieval.stores.embedded import EmbeddedStore

    return EmbeddedStore(url)


__all__ = ["Hit", "Row", "Store", "open_store"]
