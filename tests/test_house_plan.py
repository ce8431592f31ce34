"""The package's plan: no import cycles, pytest only in the glue, small modules.

The import graph is read from the source (every ``import`` statement, also inside functions
and under ``TYPE_CHECKING``: a lazy import still ties two modules together), so these tests
import nothing of the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_bsa"
# The pytest glue: the only modules that may import pytest (or its internals).
GLUE = {
    "pytest_bsa.plugin",
    "pytest_bsa.options",
    "pytest_bsa.hookspecs",
    "pytest_bsa.stash",
    "pytest_bsa.items",
    "pytest_bsa.rootdir",
    "pytest_bsa.session",
    "pytest_bsa.layers",
    "pytest_bsa.run_plan",
    "pytest_bsa.gate_reports",
}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every module name ``module`` imports, as written (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from pkg import mod`` counts as mod)."""
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reader_sees_lazy_and_type_only_imports(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pytest_bsa.session import BsaSession\n"
        "def f():\n    from . import report\n    import pytest_bsa.engine.cache\n",
        encoding="utf-8",
    )
    names = set(imported_names("pytest_bsa.mod", source))
    assert {"pytest_bsa.session", "pytest_bsa.report", "pytest_bsa.engine.cache"} <= names


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the reader found the package
    assert cycles(graph) == []


def test_only_the_glue_imports_pytest() -> None:
    modules = module_files()
    assert modules.keys() >= GLUE  # the glue list names real modules
    offenders = {
        module: sorted(
            {n for n in imported_names(module, path) if n.split(".")[0] in ("pytest", "_pytest")}
        )
        for module, path in modules.items()
        if module not in GLUE
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_renderers_import_only_the_view_model_and_the_report() -> None:
    """Markdown, HTML, terminal and JUnit share one view model; none imports another (a
    renderer that is a package may import its own modules)."""
    graph = import_graph()
    allowed = {"pytest_bsa.report", "pytest_bsa.reporting.view"}
    found = {}
    for name in ("markdown", "html", "terminal", "junit"):
        family = f"pytest_bsa.reporting.{name}"
        members = [m for m in graph if m == family or m.startswith(family + ".")]
        imports = set().union(*(graph[m] for m in members))
        found[name] = sorted(imports - allowed - set(members))
    assert found == {"markdown": [], "html": [], "terminal": [], "junit": []}


def test_no_module_is_over_four_hundred_lines() -> None:
    sizes = {
        module: len(path.read_text(encoding="utf-8").splitlines())
        for module, path in module_files().items()
    }
    assert {m: n for m, n in sizes.items() if n > 400} == {}
