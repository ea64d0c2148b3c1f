"""The HTTP side of the Matrix API: route table, authentication, bodies, errors, CORS.

Endpoint modules register handlers with `@route(method, path)`. Each handler gets a `Call`
(the request, the server's `Matrix` context and, for authenticated routes, the caller) and
returns a `Reply` model or a ready response. Every failure leaves as a Matrix error body:
`MatrixError` as it is, `ServiceError` through `errors.from_service`.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote_to_bytes

from loguru import logger
from pydantic import BaseModel, ValidationError
from starlette.datastructures import MutableHeaders, URLPath
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Message, Receive, Scope, Send

from mod import content
from mod.config.validator import Settings
from mod.error import ServiceError
from mod.hub import Hub
from mod.protocol.matrix.api import Reply
from mod.protocol.matrix.errors import (
    Code,
    MatrixError,
    Translation,
    from_service,
    from_validation,
    missing_token,
    unrecognized,
)
from mod.protocol.matrix.streams import IDLE, DeviceKeysCache, Streams, UserCache
from mod.service import Caller, Service

CLIENT = "/_matrix/client"
PREFIXES = (f"{CLIENT}/v3", f"{CLIENT}/r0")
MAX_BODY = 65536  # the spec's limit on an event, and plenty for any other request here

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}

M = TypeVar("M", bound=BaseModel)


class RuntimeLike(Protocol):
    settings: Settings
    service: Service
    hub: Hub


class Matrix:
    """What Matrix handlers use of the running server."""

    def __init__(self, runtime: RuntimeLike) -> None:
        self.runtime = runtime
        self.settings = runtime.settings.matrix
        self.server_name = self.settings.server_name
        self.service = runtime.service
        self.hub = runtime.hub
        self.streams = Streams(runtime.hub, max(IDLE, 2 * self.settings.sync_timeout_max))
        self.users = UserCache(runtime.service)
        self.device_keys = DeviceKeysCache()


def matrix_of(request: Request) -> Matrix:
    state = request.app.state
    matrix: Matrix | None = getattr(state, "matrix", None)
    if matrix is None or matrix.runtime is not state.runtime:
        matrix = state.matrix = Matrix(state.runtime)
    return matrix


def new_device_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(10))


@dataclass(slots=True)
class Call:
    """One request to a Matrix handler."""

    request: Request
    matrix: Matrix
    caller_or_none: Caller | None = None
    _raw: bytes | None = field(default=None, repr=False)

    @property
    def caller(self) -> Caller:
        assert self.caller_or_none is not None, "route registered without auth"
        return self.caller_or_none

    @property
    def service(self) -> Service:
        return self.matrix.service

    @property
    def server_name(self) -> str:
        return self.matrix.server_name

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    async def json(self) -> dict[str, Any]:
        """The body as a JSON object; an empty body counts as `{}`."""
        raw = await self._read_body()
        if not raw.strip():
            return {}
        data = read_json(raw)
        if not isinstance(data, dict):
            raise MatrixError(400, Code.NOT_JSON, "Content must be a JSON object")
        return data

    async def _read_body(self) -> bytes:
        """The body, refused (413) as soon as it is known to exceed MAX_BODY."""
        if self._raw is not None:
            return self._raw
        too_large = MatrixError(413, Code.TOO_LARGE, f"The body is over {MAX_BODY} bytes")
        declared = self.request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise too_large
            chunks.append(chunk)
        self._raw = b"".join(chunks)
        return self._raw

    async def body(self, model: type[M]) -> M:
        return validate(model, await self.json())


def read_json(raw: str | bytes, what: str = "") -> Any:
    """JSON from a client, as the server can store and serve it back (`mod.content`)."""
    try:
        return content.loads(raw)
    except content.NotJson:
        raise MatrixError(400, Code.NOT_JSON, f"{what or 'Content'} is not JSON") from None
    except content.ContentError as exc:
        where = f"{what}: {exc.where}" if what else exc.where
        raise MatrixError(400, Code.BAD_JSON, f"Invalid value at {where}: {exc.problem}"
                          ) from None


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None


Handler = Callable[[Call], Awaitable[Reply | Response]]


@dataclass(frozen=True, slots=True)
class Spec:
    handler: Handler
    auth: bool
    errors: Translation | None


# path template -> method -> spec
TABLE: dict[str, dict[str, Spec]] = {}


def route(method: str, path: str, *, auth: bool = True, errors: Translation | None = None,
          absolute: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler for `method` on `path` (under every client prefix unless absolute)."""

    def register(handler: Handler) -> Handler:
        for prefix in ("",) if absolute else PREFIXES:
            TABLE.setdefault(prefix + path, {})[method] = Spec(handler, auth, errors)
        return handler

    return register


def access_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""
    return request.query_params.get("access_token")


def error_response(error: MatrixError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def reply(model: Reply, status: int = 200) -> Response:
    return Response(model.dump_json(), status_code=status, media_type="application/json")


async def run(spec: Spec, request: Request) -> Response:
    matrix = matrix_of(request)
    call = Call(request, matrix)
    try:
        if spec.auth:
            token = access_token(request)
            if not token:
                raise missing_token()
            try:
                call.caller_or_none = caller = await matrix.service.accounts.authenticate(token)
            except ServiceError as exc:
                raise from_service(exc) from None
            matrix.service.devices.seen.saw(caller, request.client.host if request.client
                                            else "")
        try:
            result = await spec.handler(call)
        except ServiceError as exc:
            raise from_service(exc, spec.errors) from None
        return reply(result) if isinstance(result, Reply) else result
    except MatrixError as exc:
        return error_response(exc)
    except Exception as exc:
        return failed(request.method, scope_path(request.scope), exc)


def scope_path(scope: Scope) -> str:
    """The request's path as a log line may show it."""
    return repr(scope.get("path", ""))[1:-1][:200]


def failed(method: str, path: str, exc: BaseException) -> Response:
    """An unexpected error: one ERROR line saying where, and a JSON 500 for the client."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = (f" at {frame.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.tb_lineno}"
             if frame is not None else "")
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    logger.error("Matrix {} {} failed: {}{}: {}", method, path, type(exc).__name__, where,
                 text)
    return error_response(MatrixError(500, Code.UNKNOWN, "Internal server error"))


@dataclass(frozen=True, slots=True)
class _Template:
    segments: tuple[str, ...]  # literal segments, or "" where a parameter goes
    names: tuple[str, ...]  # parameter names, "" for literals
    methods: dict[str, Spec]


def _key(parts: list[str]) -> tuple[int, str]:
    """Where a path is filed: its length and the segment after `/_matrix/client/v3`."""
    return len(parts), parts[4] if len(parts) > 4 else ""


class MatrixRouter:
    """The ASGI app of every path under /_matrix (and /.well-known/matrix): finds the handler
    by path segments in a table indexed by (segment count, endpoint's first segment), so a request
    costs a dict lookup or two instead of a regex per endpoint; 404/405 M_UNRECOGNIZED."""

    def __init__(self) -> None:
        self.index: dict[tuple[int, str], list[_Template]] = {}
        for path, methods in TABLE.items():
            parts = path.split("/")
            names = tuple(part[1:-1] if part.startswith("{") else "" for part in parts)
            literals = tuple("" if name else part for part, name in zip(parts, names,
                                                                          strict=True))
            key = _key(parts)
            assert not key[1].startswith("{"), f"{path}: a parameter where the index looks"
            self.index.setdefault(key, []).append(_Template(literals, names, methods))

    def find(self, parts: list[str]) -> tuple[_Template, dict[str, str]] | None:
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
                response = await run(spec, Request(scope, receive))
        await response(scope, receive, send)


class _Everything(BaseRoute):
    """Every HTTP path under /_matrix, whatever characters it holds (Starlette's `{x:path}`
    stops at a newline), so every such request gets a Matrix answer."""

    def __init__(self, app: MatrixRouter) -> None:
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


def build_routes() -> list[BaseRoute]:
    router = MatrixRouter()
    return [_Everything(router),
            *(Route(path, router) for path in TABLE if not path.startswith("/_matrix/"))]


def _token_out_of_query(scope: Scope) -> None:
    """Move an `access_token` query parameter into the Authorization header, in place, so the
    access log (which prints the query string) never shows a token."""
    query = scope.get("query_string", b"")
    if b"access_token=" not in query:
        return
    kept, token = [], b""
    for pair in query.split(b"&"):
        if pair.startswith(b"access_token="):
            token = token or unquote_to_bytes(pair[len(b"access_token="):].replace(b"+", b" "))
        else:
            kept.append(pair)
    scope["query_string"] = b"&".join(kept)
    headers = list(scope.get("headers", []))
    if token and not any(name == b"authorization" for name, _ in headers):
        headers.append((b"authorization", b"Bearer " + token))
    scope["headers"] = headers


class MatrixCORS:
    """CORS for web clients (Element): preflight answers, and headers on every response
    under /_matrix and /.well-known/matrix. Also keeps access tokens out of access logs."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(("/_matrix/", "/.well-known/matrix/")):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await JSONResponse({}, headers=CORS_HEADERS)(scope, receive, send)
            return
        _token_out_of_query(scope)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in CORS_HEADERS.items():
                    headers[key] = value
            await send(message)

        await self.app(scope, receive, send_with_cors)
