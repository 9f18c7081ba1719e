"""fintune's modules import one another one way: the graph of intra-package imports has no cycle.

Read from the source with `ast` (nothing is imported), so a cycle fails here even when it is dodged
at run time by an import inside a function or under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fintune

SRC = Path(fintune.__file__).parent
Graph = dict[str, set[str]]


def module_name(path: Path, root: Path = SRC) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (or type-checked): top level and inside top-level
    if/try/with blocks, not in functions or classes."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, block, []):
                    found += _top_level_imports(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return found


def imports_of(source: str, module: str, known: set[str], *, deferred: bool, is_package: bool = False) -> set[str]:
    """The known modules `module` imports; with `deferred`, also those imported inside functions."""
    tree = ast.parse(source)
    if deferred:
        nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    else:
        nodes = _top_level_imports(tree.body)
    package = module if is_package else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        # `from pkg import sub` imports the submodule `pkg.sub`; `from mod import name` imports `mod`
        targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    return {t for t in targets if t in known and t != module}


def package_graph(root: Path = SRC, *, deferred: bool) -> Graph:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    return {
        name: imports_of(path.read_text(), name, known, deferred=deferred, is_package=path.name == "__init__.py")
        for name, path in files.items()
    }


def find_cycle(graph: Graph) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


@pytest.mark.parametrize("deferred", [False, True], ids=["module-level", "with-imports-in-functions"])
def test_fintune_imports_form_no_cycle(deferred):
    graph = package_graph(deferred=deferred)
    assert len(graph) > 50 and graph["fintune.embed.train"]  # the walk found the package and its edges
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_sees_cycles_hidden_by_type_checking_and_function_imports():
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    a = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import Result\n"
    b = "from pkg import a\n\ndef f():\n    from . import c\n"
    c = "from pkg.b import f\n"
    graph = {
        "pkg.a": imports_of(a, "pkg.a", known, deferred=False),
        "pkg.b": imports_of(b, "pkg.b", known, deferred=False),
        "pkg.c": imports_of(c, "pkg.c", known, deferred=False),
    }
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.b"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    deferred = {"pkg.b": imports_of(b, "pkg.b", known, deferred=True), "pkg.c": {"pkg.b"}}
    assert deferred["pkg.b"] == {"pkg.a", "pkg.c"} and find_cycle(deferred) == ["pkg.b", "pkg.c", "pkg.b"]
    assert find_cycle({"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": set()}) is None
