"""`fintune models list|path`."""

from __future__ import annotations

import argparse

from rich.table import Table

from fintune.cli.output import console
from fintune.models.gguf import cache_dir_for, is_converted
from fintune.models.registry import ALIASES
from fintune.models.resolve import resolve_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="embedded default models and where they resolve")
    msub = models.add_subparsers(dest="models_cmd", required=True)
    msub.add_parser("list", help="aliases, what they are, size, where they resolve, cached or not").set_defaults(
        func=cmd_list
    )
    path = msub.add_parser("path", help="print the local folder of a model (converting first if needed)")
    path.add_argument("name", help="alias, local path or hub id")
    path.set_defaults(func=cmd_path)


def _size_mb(path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def cmd_list(args: argparse.Namespace) -> int:
    table = Table(title="fintune model aliases")
    for column in ("alias", "kind", "what", "size", "resolves to", "status"):
        table.add_column(column)
    for alias in ALIASES.values():
        source = alias.source_path()
        if source is None:
            table.add_row(
                alias.name, alias.kind, alias.description, "-", "-", f"[red]not installed[/] ({alias.install_hint()})"
            )
            continue
        size = f"{_size_mb(source):.0f} MB"
        if alias.gguf:
            target = cache_dir_for(alias.name, source)
            status = "[green]converted (cached)[/]" if is_converted(target) else "[yellow]converts on first use[/]"
        else:
            target, status = source, "[green]ready[/]"
        table.add_row(alias.name, alias.kind, alias.description, size, str(target), status)
    console.print(table)
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    print(resolve_model(args.name))
    return 0
