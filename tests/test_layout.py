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


def test_no_module_shadows_the_standard_library() -> None:
    """A module named like one of the standard library's (operator.py, once) reads as that
    one in imports and tracebacks."""
    import sys

    shadowing = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "mod").rglob("*.py"))
                 if path.stem in sys.stdlib_module_names]
    assert shadowing == []


def test_no_module_imports_another_modules_private_names() -> None:
    """`from x import _name` across modules: a name another module needs is public."""
    found = []
    for path in sorted([*(ROOT / "mod").rglob("*.py"), ROOT / "server.py", ROOT / "manage.py"]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                found += [f"{path.relative_to(ROOT)}: {node.module}.{alias.name}"
                          for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert found == []
