"""Finding a request's Matrix handler: the router built from the route list (`routes.py`)
with the Matrix context, and the Starlette routes in front of it.

The router matches segments of the raw path in a table indexed by (segment count, the
endpoint's first segment), so a request costs a dict lookup or two instead of a regex per
endpoint, and a parameter may hold an encoded `/`. Unknown paths and methods get 404/405
M_UNRECOGNIZED.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.datastructures import URLPath
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send

from mod.protocol.matrix.context import Matrix
from mod.protocol.matrix.errors import Code, MatrixError, unrecognized
from mod.protocol.matrix.routing import Spec, error_response, run


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One entry of the route list: `spec` answers `method` on the path template `path`
    (`{name}` a segment's parameter, `{name?}` one that may be empty)."""

    method: str
    path: str
    spec: Spec


def table(endpoints: Iterable[Endpoint]) -> dict[str, dict[str, Spec]]:
    """Path template -> method -> spec, templates in the order the list first names them."""
    found: dict[str, dict[str, Spec]] = {}
    for endpoint in endpoints:
        methods = found.setdefault(endpoint.path, {})
        assert endpoint.method not in methods, f"{endpoint.method} {endpoint.path} twice"
        methods[endpoint.method] = endpoint.spec
    return found


@dataclass(frozen=True, slots=True)
class _Template:
    segments: tuple[str, ...]  # literal segments, or "" where a parameter goes
    names: tuple[str, ...]  # parameter names, "" for literals
    methods: dict[str, Spec]


def _key(parts: list[str]) -> tuple[int, str]:
    """Where a path is filed: its length and the segment after `/_matrix/client/v3`."""
    return len(parts), parts[4] if len(parts) > 4 else ""


class RouteIndex:
    """The route list's templates filed by (segment count, endpoint's first segment)."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        self.index: dict[tuple[int, str], list[_Template]] = {}
        for path, methods in table(endpoints).items():
            parts = path.split("/")
            names = tuple(part[1:-1] if part.startswith("{") else "" for part in parts)
            literals = tuple("" if name else part for part, name in zip(parts, names,
                                                                          strict=True))
            key = _key(parts)
            assert not key[1].startswith("{"), f"{path}: a parameter where the index looks"
            self.index.setdefault(key, []).append(_Template(literals, names, methods))

    def find(self, parts: list[str]) -> tuple[_Template, dict[str, str]] | None:
        """The template a path's segments match, and its parameters."""
        for template in self.index.get(_key(parts), ()):
            params: dict[str, str] = {}
            for part, literal, name in zip(parts, template.segments, template.names,
                                           strict=True):
                if name:
                    if not part and not name.endswith("?"):  # `{name?}` may be empty
                        break
                    params[name.rstrip("?")] = part
                elif part != literal:
                    break
            else:
                return template, params
        return None


class MatrixRouter:
    """The ASGI app of every Matrix path: the handler of each request, called with the
    server's Matrix context."""

    def __init__(self, endpoints: Iterable[Endpoint], matrix: Matrix) -> None:
        self.matrix = matrix
        self.find = RouteIndex(endpoints).find

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        parts = [(unquote_to_bytes(part) if b"%" in part else part).decode("utf-8", "replace")
                 for part in raw.split(b"/")]
        found = self.find(parts)
        method = scope["method"]
        if found is None:
            response: Response = error_response(unrecognized(method, scope["path"]))
        else:
            template, params = found
            spec = template.methods.get(method) or (
                template.methods.get("GET") if method == "HEAD" else None)
            if spec is None:
                response = error_response(unrecognized(method, scope["path"], True))
            elif any("\x00" in value for value in params.values()) or b"%00" in scope.get(
                    "query_string", b""):
                response = error_response(MatrixError(
                    400, Code.INVALID_PARAM, "Parameters must not hold NUL characters"))
            else:
                scope["path_params"] = params
                response = await run(spec, self.matrix, Request(scope, receive))
        await response(scope, receive, send)


class MatrixGate:
    """The Matrix API's place among the app's routes, fixed when the app is built; the
    router behind it is opened by the app's lifespan, with the Matrix context."""

    def __init__(self, endpoints: Iterable[Endpoint]) -> None:
        self.outside = list(dict.fromkeys(endpoint.path for endpoint in endpoints
                                          if not endpoint.path.startswith("/_matrix/")))
        self.router: MatrixRouter | None = None

    def routes(self) -> list[BaseRoute]:
        """Every path under /_matrix, then the few Matrix paths outside it."""
        return [_Everything(self), *(Route(path, self) for path in self.outside)]

    def open(self, router: MatrixRouter) -> None:
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.router is None:
            raise RuntimeError("a Matrix request before the app's lifespan opened the router")
        await self.router(scope, receive, send)


class _Everything(BaseRoute):
    """Every HTTP path under /_matrix, whatever characters it holds (Starlette's `{x:path}`
    stops at a newline), so every such request gets a Matrix answer."""

    def __init__(self, app: MatrixGate) -> None:
        self.app = app

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == "/_matrix" or path.startswith("/_matrix/"):
            return Match.FULL, {"endpoint": self.app}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
