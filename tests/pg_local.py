"""A real PostgreSQL 16 server with pgvector on loopback, for the tests and CI (fintune.pgserver_local).

python -m tests.pg_local start DIR   # prints the superuser URL; DIR holds data, socket, log
python -m tests.pg_local stop DIR
"""

from __future__ import annotations

import sys

from fintune.pgserver_local import PgServerError, start, stop

__all__ = ["psql", "start", "stop"]


def psql(url: str, statement: str) -> None:
    """Run one administrative statement (role and database set-up in tests)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(f"usage: python -m tests.pg_local start|stop DIR (not {' '.join(argv)!r})", file=sys.stderr)
        return 2
    command, where = argv
    try:
        if command == "start":
            print(start(where))
        else:
            stop(where)
    except PgServerError as exc:
        print(f"pg_local: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
