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


# Kind values that are also names of JSON fields (Matrix /sync's "account_data" and
# "to_device", the typing change's own "typing" flag) and tables: as a dict key, an index,
# the key of a `.get` or a table's name they name a field, not a kind.
FIELD_WORDS = frozenset({"account_data", "to_device", "typing"})


def _field_names(tree: ast.AST) -> set[int]:
    """ids of the string constants that name a JSON field or a table."""
    named: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            named.update(id(key) for key in node.keys if key is not None)
        elif isinstance(node, ast.Subscript):
            named.add(id(node.slice))
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "table"):
            named.add(id(node.value))  # a table's name (`sqlmeta.table`)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("get", "pop", "setdefault") and node.args):
            named.add(id(node.args[0]))
    return named


def kind_literals(path: Path) -> list[str]:
    """`line: value` of each string literal in a module that spells a change kind."""
    from mod.changes import Kind

    values = {kind.value for kind in Kind}
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    fields = _field_names(tree)
    found = [node for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and node.value in values and id(node) not in docstrings
             and not (node.value in FIELD_WORDS and id(node) in fields)]
    return [f"{node.lineno}: {node.value!s}"
            for node in sorted(found, key=lambda node: (node.lineno, node.col_offset))]


def test_change_kinds_are_spelled_only_in_their_module() -> None:
    offending = {str(path.relative_to(ROOT)): kind_literals(path)
                 for path in sorted((ROOT / "mod").rglob("*.py"))
                 if path != ROOT / "mod" / "changes.py"}
    assert {path: found for path, found in offending.items() if found} == {}


def test_the_kind_contract_sees_a_literal(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('if change.kind == "flow_left":\n    pass\n'
                      'LIVE = frozenset({"typing"})\n'
                      'body = {"account_data": {}, "flow_joined": 1}\n'
                      'on = payload.get("typing")\n')
    assert kind_literals(sample) == ["1: flow_left", "3: typing", "4: flow_joined"]
