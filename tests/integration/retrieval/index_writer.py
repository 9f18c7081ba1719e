"""One `fintune index` process for the concurrent-writer tests.

    python -m tests.integration.retrieval.index_writer GATE run|stall FINTUNE-INDEX-ARGS...

It does the slow imports first, says it is ready (a `ready-PID` file beside GATE), waits for GATE to
exist and then runs the real CLI, so several writers start indexing at the same moment. With `stall`
it writes half of its first batch, creates `stalled` beside GATE and hangs there, holding the
collection's lock, until the test kills it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def _stall_in_first_batch(marker: Path) -> None:
    from fintune.retrieval import stores

    real_open = stores.open_store

    def open_store(url: str) -> stores.Store:
        store = real_open(url)
        upsert = store.upsert

        def half_then_hang(name: str, rows: list) -> None:
            upsert(name, rows[: len(rows) // 2])
            marker.touch()
            time.sleep(600)

        store.upsert = half_then_hang  # type: ignore[method-assign]
        return store

    stores.open_store = open_store  # cmd_index imports it when it runs


def main() -> int:
    gate, mode, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    # the slow imports, before the gate
    import lancedb  # noqa: F401
    import langchain_postgres  # noqa: F401
    import sentence_transformers  # noqa: F401

    import fintune.retrieval.embeddings
    import fintune.retrieval.index
    from fintune.cli.main import main as fintune

    if mode == "stall":
        _stall_in_first_batch(gate.parent / "stalled")
    (gate.parent / f"ready-{os.getpid()}").touch()
    while not gate.exists():
        time.sleep(0.01)
    return fintune(argv)


if __name__ == "__main__":
    sys.exit(main())
