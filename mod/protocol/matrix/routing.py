"""One request to a Matrix handler: authentication, bodies, replies and errors.

A handler (listed with its method and path in `routes.py`) gets a `Call` (the request, the
server's `Matrix` context and, for authenticated routes, the caller) and returns a `Reply`
model or a ready response. Every failure leaves as a Matrix error body: `MatrixError` as it
is, `ServiceError` through `errors.from_service`.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loguru import logger
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

from mod import content
from mod.error import ServiceError
from mod.protocol.matrix.api import Reply
from mod.protocol.matrix.context import Matrix
from mod.protocol.matrix.errors import (
    Code,
    MatrixError,
    Translation,
    from_service,
    from_validation,
    missing_token,
)
from mod.service import Caller, Service

MAX_BODY = 65536  # the spec's limit on an event, and plenty for any other request here

M = TypeVar("M", bound=BaseModel)


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
        assert self.caller_or_none is not None, "route listed without auth"
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


async def run(spec: Spec, matrix: Matrix, request: Request) -> Response:
    """The handler's response to the request, or the Matrix error it ends in."""
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
