"""The layout's contracts (docs/DESIGN.md): the protocols reach the data only through the
service; no import climbs from a protocol back up to the top of mod/ (but to the few shared
modules allowed below); the two protocols stay apart; no import cycle among mod/'s modules."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

PROTOCOLS = ROOT / "mod" / "protocol"
# The modules at the top of mod/ a protocol may import: errors, metrics, the hub that pushes
# committed changes, and content rules both protocols share. Packages below the protocols
# (mod.service, mod.config) may be imported too; mod.db never (see below).
SHARED = frozenset({"mod.error", "mod.metrics", "mod.hub", "mod.content", "mod.changes"})
BELOW = ("mod.service", "mod.config")


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


def test_mtp_modules_stay_small() -> None:
    for path in (PROTOCOLS / "mtp").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name


def module_names(package: Path) -> dict[str, Path]:
    """Every module of a package (dotted name -> file), packages by their __init__.py."""
    found: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph(package: Path) -> dict[str, set[str]]:
    """Which of the package's modules each of its modules imports, wherever the import is
    (functions and `if TYPE_CHECKING:` blocks too). `from pkg import module` names the module,
    not pkg; a parent package, imported with every module below it, is no edge."""
    modules = module_names(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    target = child if child in modules else node.module
                    if target in modules:
                        edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan's
    algorithm, iterative), each sorted."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in order:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop()
                if child not in order:
                    order[child] = low[child] = len(order)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], order[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == order[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_among_mod_modules() -> None:
    assert cycles(import_graph(ROOT / "mod")) == []


def test_the_cycle_check_sees_a_cycle(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub import c\n")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f() -> None:\n    import pkg.sub.c\n")
    (package / "sub" / "c.py").write_text("from pkg.a import f\nfrom pkg.sub import d\n")
    (package / "sub" / "d.py").write_text("import os\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.sub"] == {"pkg.sub.c"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    (package / "a.py").write_text("import pkg.sub.d\n")
    assert cycles(import_graph(package)) == []


def test_the_protocols_climb_up_only_to_shared_modules() -> None:
    graph = import_graph(ROOT / "mod")
    offending = {
        name: sorted(target for target in targets
                     if not target.startswith(("mod.protocol.", *BELOW))
                     and target not in (*BELOW, *SHARED))
        for name, targets in graph.items() if name.startswith("mod.protocol")
    }
    assert {name: targets for name, targets in offending.items() if targets} == {}


def test_mtp_and_matrix_do_not_import_each_other() -> None:
    graph = import_graph(ROOT / "mod")
    for name, targets in graph.items():
        for this, other in (("mod.protocol.mtp", "mod.protocol.matrix"),
                            ("mod.protocol.matrix", "mod.protocol.mtp")):
            if name == this or name.startswith(f"{this}."):
                assert not [t for t in targets if t == other or t.startswith(f"{other}.")], name


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


def test_only_the_route_list_names_the_handler_modules() -> None:
    """Handlers register nothing: the route list imports them, and nothing they import
    knows the list or the router built from it."""
    graph = matrix_imports()
    knowing = sorted(module for module, imported in graph.items()
                     if imported & {"routes", "dispatch"})
    assert knowing == ["routes"]


SERVICE = ROOT / "mod" / "service"
# What the service hands: the protocols, the hub and the operator's tool take these from it.
SERVICE_USERS = sorted([*PROTOCOLS.rglob("*.py"), ROOT / "mod" / "hub.py",
                        *(ROOT / "mod" / "cli").rglob("*.py"), ROOT / "manage.py"])


def service_names(path: Path) -> set[tuple[str, str]]:
    """(service module, name) of each name a file takes from the service: imported from it,
    or read as an attribute of a service module it imported."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[tuple[str, str]] = set()
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.ImportFrom) and node.module
                and (node.module == "mod.service" or node.module.startswith("mod.service."))):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                if (SERVICE / f"{alias.name}.py").exists() and node.module == "mod.service":
                    modules[alias.asname or alias.name] = child
                else:
                    found.add((node.module, alias.name))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules):
            found.add((modules[node.value.id], node.attr))
    return found


def defined_in_db() -> dict[int, str]:
    """id -> `module.name` of each object a module of mod/db defines at its top level."""
    import importlib

    found: dict[int, str] = {}
    for name, path in module_names(ROOT / "mod" / "db").items():
        name = f"mod.{name}"
        module = importlib.import_module(name)
        for node in ast.parse(path.read_text(), str(path)).body:
            targets: list[str] = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                targets = [node.name]
            elif isinstance(node, ast.Assign):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                targets = [node.target.id]
            for target in targets:
                value = getattr(module, target, None)
                if value is not None and not isinstance(value, (int, str, bytes, float)):
                    found[id(value)] = f"{name}.{target}"
    return found


def storage_names(paths: list[Path]) -> dict[str, list[str]]:
    """Per file, the names it takes from the service that mod/db defines."""
    import importlib
    import types

    storage = defined_in_db()
    offending: dict[str, list[str]] = {}
    for path in paths:
        for module_name, name in sorted(service_names(path)):
            value = getattr(importlib.import_module(module_name), name, None)
            origin = getattr(value, "__module__", None) if isinstance(value, type) or callable(
                value) else getattr(value, "__name__", None) if isinstance(
                value, types.ModuleType) else None
            if id(value) in storage or (isinstance(origin, str) and origin.startswith("mod.db")):
                offending.setdefault(path.name, []).append(
                    f"{module_name}.{name}")
    return offending


def test_no_storage_type_leaves_the_service() -> None:
    """The protocols, the hub and the operator's tool get the service's own types (users
    without password hashes, `mod.changes.Change`), never one of mod/db's through it."""
    import mod.service

    assert storage_names(SERVICE_USERS) == {}
    exported = [name for name in mod.service.__all__
                if id(getattr(mod.service, name)) in defined_in_db()
                or str(getattr(getattr(mod.service, name), "__module__", "")).startswith("mod.db")]
    assert exported == []


def test_the_storage_contract_sees_a_row(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from mod.service.records import User\nfrom mod.service import moderation\n"
                      "from mod.service.accounts import db\nx = moderation.Conn\n")
    assert ("mod.service.moderation", "Conn") in service_names(sample)
    offending = storage_names([sample])
    assert sorted(next(iter(offending.values()))) == ["mod.service.accounts.db",
                                                      "mod.service.moderation.Conn"]


def test_no_public_service_type_holds_a_password_hash() -> None:
    import dataclasses
    import importlib
    import typing

    holding = []
    for name in module_names(SERVICE):
        module = importlib.import_module(f"mod.{name}")
        for attr, value in vars(module).items():
            if (attr.startswith("_") or not isinstance(value, type)
                    or not value.__module__.startswith("mod.service")):
                continue
            fields = set(getattr(value, "__annotations__", {}))
            if dataclasses.is_dataclass(value):
                fields |= {field.name for field in dataclasses.fields(value)}
            if typing.is_typeddict(value):
                fields |= set(value.__annotations__)
            if "password_hash" in fields:
                holding.append(f"{value.__module__}.{attr}")
    assert holding == []
