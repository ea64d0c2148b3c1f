"""The Matrix route list (`mod/protocol/matrix/routes.py`) against the handler modules and
the router built from it: in process, no server."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections import Counter
from typing import Any, get_args, get_type_hints

import pytest
from starlette.responses import Response

import mod.protocol.matrix
from mod.protocol.matrix.api import Reply
from mod.protocol.matrix.dispatch import Endpoint, MatrixGate, RouteIndex, table
from mod.protocol.matrix.routes import ROUTES
from mod.protocol.matrix.routing import Call


def handler_like(function: Any) -> bool:
    """A public coroutine function of one parameter, a `Call`, that answers with a reply
    model or a response: how every handler looks."""
    if not inspect.iscoroutinefunction(function) or function.__name__.startswith("_"):
        return False
    hints = get_type_hints(function)
    answers = get_args(hints.get("return")) or (hints.get("return"),)
    return (list(hints) == [next(iter(inspect.signature(function).parameters)), "return"]
            and len(inspect.signature(function).parameters) == 1
            and next(iter(hints.values())) is Call
            and all(isinstance(answer, type) and issubclass(answer, (Reply, Response))
                    for answer in answers))


def handlers_in_modules() -> set[Any]:
    found: set[Any] = set()
    for info in pkgutil.iter_modules(mod.protocol.matrix.__path__):
        module = importlib.import_module(f"mod.protocol.matrix.{info.name}")
        found.update(value for value in vars(module).values()
                     if handler_like(value) and value.__module__ == module.__name__)
    return found


def test_no_route_is_listed_twice() -> None:
    twice = [key for key, count in Counter((endpoint.method, endpoint.path)
                                           for endpoint in ROUTES).items() if count > 1]
    assert twice == []


def test_the_list_and_the_handler_modules_agree() -> None:
    listed = {endpoint.spec.handler for endpoint in ROUTES}
    in_modules = handlers_in_modules()
    assert sorted(f"{h.__module__}.{h.__name__}" for h in in_modules - listed) == []
    assert sorted(f"{h.__module__}.{h.__name__}" for h in listed - in_modules) == []


def test_every_client_route_is_under_both_prefixes() -> None:
    routes = {(endpoint.method, endpoint.path) for endpoint in ROUTES}
    for method, path in routes:
        for one, other in (("/_matrix/client/v3/", "/_matrix/client/r0/"),
                           ("/_matrix/client/r0/", "/_matrix/client/v3/")):
            if path.startswith(one):
                assert (method, path.replace(one, other, 1)) in routes, (method, path)


def concrete(template: str) -> list[str]:
    """A request path matching the template, split into segments."""
    return [part.strip("{}?").upper() if part.startswith("{") else part
            for part in template.split("/")]


def test_the_router_finds_every_listed_route() -> None:
    index = RouteIndex(ROUTES)
    for path, methods in table(ROUTES).items():
        found = index.find(concrete(path))
        assert found is not None, path
        template, params = found
        assert template.methods == methods, path
        names = [part.strip("{}?") for part in path.split("/") if part.startswith("{")]
        assert params == {name: name.upper() for name in names}, path


def test_the_router_refuses_what_is_not_listed() -> None:
    index = RouteIndex(ROUTES)
    for path in ("/_matrix/client/v3/no/such/endpoint", "/_matrix/client/v3/sync/more",
                 "/_matrix/client/v2/sync", "/_matrix/client/v3/rooms//send/t/1"):
        assert index.find(path.split("/")) is None, path


def test_a_route_listed_twice_is_refused() -> None:
    with pytest.raises(AssertionError, match="twice"):
        table([*ROUTES, ROUTES[0]])


def test_the_gate_answers_only_once_the_lifespan_opened_it() -> None:
    gate = MatrixGate(ROUTES)
    assert [route.path for route in gate.routes()[1:]  # type: ignore[attr-defined]
            ] == ["/.well-known/matrix/client"]
    assert gate.router is None
    endpoint = Endpoint("GET", "/x", ROUTES[0].spec)
    assert MatrixGate([endpoint]).outside == ["/x"]


def test_each_handler_is_listed_where_its_docstring_says() -> None:
    """A handler's docstring starts with the route it serves (`GET /_matrix/client/v3/sync`;
    `[/...]` marks optional trailing segments): the list has it there."""
    for handler in {endpoint.spec.handler for endpoint in ROUTES}:
        method, _, rest = (handler.__doc__ or "").partition(" ")
        documented = rest.split()[0].rstrip(":").split("[")[0] if rest else ""
        listed = [endpoint.path for endpoint in ROUTES
                  if endpoint.spec.handler is handler and endpoint.method == method]
        assert documented and any(path == documented or ("[" in rest and path.startswith(
            documented)) for path in listed), (handler.__qualname__, method, documented)
