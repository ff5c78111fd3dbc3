"""The packages form layers: core/ at the bottom, the task, models, analysis and reports above it, the stages
(pipeline/) and the sweep driver on top. A module never imports one of a layer above its own, and no import,
at the top of a file or inside a function, closes a cycle."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "synthetic", "net", "analysis", "report", "pipeline", "sweep")
ALLOWED = {  # package -> the project packages its modules may import
    "core": {"core"},
    "synthetic": {"core", "synthetic"},
    "net": {"core", "synthetic", "net"},
    "analysis": {"core", "synthetic", "net", "analysis"},
    "report": {"core", "synthetic", "report"},
    "pipeline": {"core", "synthetic", "net", "analysis", "report", "pipeline"},
    "sweep": {"core", "pipeline", "sweep"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports anywhere in it (`from pkg import mod` counts as pkg.mod)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    return {name: imported_modules(path, set(files)) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_a_layer_above_its_own():
    wrong = [f"{m} imports {i}" for m, imports in import_graph().items() for i in sorted(imports)
             if i.split(".")[0] not in ALLOWED[m.split(".")[0]]]
    assert wrong == []


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": set(), "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
])
def test_find_cycle(graph, cycle):
    assert find_cycle(graph) == cycle
