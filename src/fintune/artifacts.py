"""Atomic output folders: written beside the target and renamed into place only when complete."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fintune.errors import OutputExistsError


@contextmanager
def atomic_dir(target: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; rename it to `target` if the block succeeds.

    A sibling (same filesystem) makes the final rename atomic, so readers see either no folder or a
    complete one, never a half-written model. On any exception the temporary folder is removed.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{target} already exists; choose another output or allow overwriting")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary shared folder
    try:
        yield tmp
        if target.exists():
            # Move the old folder aside first so a crash between the two renames loses nothing.
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def work_dir(output: Path) -> Path:
    """Checkpoints live beside the output until training completes, so a rerun can resume."""
    return output.with_name(f".{output.name}.work")


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete `checkpoint-N` folder a Trainer left in `folder`, if any.

    The Trainer writes `trainer_state.json` last: a checkpoint without it was cut short by a kill, and
    resuming from it would fail, so the one before it is used."""
    points = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if folder.is_dir() else []
    complete = [p for p in points if (p / "trainer_state.json").is_file()]
    return complete[-1] if complete else None
