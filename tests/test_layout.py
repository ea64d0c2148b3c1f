"""The layout's contracts (docs/DESIGN.md): the protocols reach the data only through the
service."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

PROTOCOLS = ROOT / "mod" / "protocol"


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_protocols_import_nothing_from_the_database_layer() -> None:
    offending = {
        str(path.relative_to(ROOT)): sorted(name for name in imported_modules(path)
                                            if name == "mod.db" or name.startswith("mod.db."))
        for path in sorted(PROTOCOLS.rglob("*.py"))
    }
    assert {path: names for path, names in offending.items() if names} == {}


def test_the_contract_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from mod.db import dbhandler as db\nimport mod.db.engine\n")
    assert {"mod.db", "mod.db.dbhandler", "mod.db.engine"} <= imported_modules(sample)


def test_service_modules_stay_small() -> None:
    for path in (ROOT / "mod" / "service").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name


MATRIX = PROTOCOLS / "matrix"
MATRIX_PACKAGE = "mod.protocol.matrix"


def matrix_imports() -> dict[str, set[str]]:
    """Each Matrix module -> the Matrix modules it imports (the package itself left out:
    `from mod.protocol.matrix import ids` imports `ids`)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(MATRIX.glob("*.py")):
        if path.name == "__init__.py":
            continue
        graph[path.stem] = {name.removeprefix(f"{MATRIX_PACKAGE}.")
                            for name in imported_modules(path)
                            if name.startswith(f"{MATRIX_PACKAGE}.")
                            and (MATRIX / f"{name.rsplit('.', 1)[1]}.py").exists()}
    return graph


def test_matrix_modules_stay_small() -> None:
    for path in MATRIX.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name


def test_matrix_modules_import_no_circle() -> None:
    graph = matrix_imports()
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, " -> ".join((*trail, module))
        if module not in done:
            for imported in sorted(graph.get(module, ())):
                visit(imported, (*trail, module))
            done.add(module)

    for module in graph:
        visit(module, ())


def test_only_the_route_list_names_the_handler_modules() -> None:
    """Handlers register nothing: the route list imports them, and nothing they import
    knows the list or the router built from it."""
    graph = matrix_imports()
    knowing = sorted(module for module, imported in graph.items()
                     if imported & {"routes", "dispatch"})
    assert knowing == ["routes"]
