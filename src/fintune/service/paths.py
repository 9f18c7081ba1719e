"""Data paths a client may name: only inside the server's data roots, resolved, no `..`, no symlinks out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePath

from fintune.errors import UsageError


class PathRefused(UsageError):
    """A path the client named lies outside the data roots (or does not exist there)."""


class PathMissing(PathRefused):
    """The path would be inside the data roots, but nothing is there."""


def confine(value: str, roots: Sequence[Path], field: str) -> Path:
    """The resolved path of `value` inside one of `roots`.

    Relative paths are read against each root in turn. `..` is refused as written (not only after
    resolving) so a client cannot probe the layout around a root; resolving follows symlinks, so a link
    inside a root that points outside it is refused too."""
    if not value or "\x00" in value:
        raise PathRefused(f"{field}: empty or invalid path")
    given = PurePath(value)
    if ".." in given.parts:
        raise PathRefused(f"{field}: '{value}' contains '..'; name a path inside a data root")
    resolved_roots = [root.resolve() for root in roots]
    candidates = [Path(given)] if given.is_absolute() else [root / given for root in resolved_roots]
    for candidate in candidates:
        if not candidate.exists() and not candidate.is_symlink():
            continue
        resolved = candidate.resolve()
        if not any(resolved.is_relative_to(root) for root in resolved_roots):
            raise PathRefused(f"{field}: '{value}' leads outside the data roots (through a symlink or absolute path)")
        return resolved
    if given.is_absolute() and not any(Path(given).is_relative_to(root) for root in resolved_roots):
        raise PathRefused(f"{field}: '{value}' is outside the data roots")
    raise PathMissing(f"{field}: '{value}' does not exist under the data roots ({', '.join(map(str, resolved_roots))})")
