"""CORS for the Matrix API's web clients (Element), and access tokens kept out of access
logs: the middleware in front of every path under /_matrix and /.well-known/matrix."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote_to_bytes

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}


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
