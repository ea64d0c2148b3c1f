"""GET /health and GET /metrics, and the middleware that counts HTTP requests."""

from __future__ import annotations

import asyncio
import ipaddress
import time

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mod.metrics import connections, http_answered, render

HEALTH_TIMEOUT = 2.0

def _protocol(scope: Scope) -> str:
    if scope["type"] == "websocket":
        return "mtp"
    return "matrix" if scope["path"].startswith(("/_matrix/", "/.well-known/matrix/")) else "http"


# Request methods counted by name; any other (a client's invention) counts as OTHER, so no
# client can grow the metrics without bound.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


class Instrument:
    """ASGI middleware: counts connections by protocol, and HTTP requests with their status
    codes and times (MTP requests are counted by the controller, per frame)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        protocol = _protocol(scope)
        gauge = connections(protocol)
        gauge.inc()
        if scope["type"] == "websocket":
            try:
                await self.app(scope, receive, send)
            finally:
                gauge.dec()
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            gauge.dec()
            method = scope["method"] if scope["method"] in HTTP_METHODS else "OTHER"
            http_answered(protocol, method, status, time.perf_counter() - started)


def allowed(request: Request, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
            ) -> bool:
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


async def metrics_page(request: Request) -> Response:
    """GET /metrics: Prometheus' text format, only to [METRICS] ALLOW."""
    if not allowed(request, request.app.state.settings.metrics.networks()):
        return PlainTextResponse("Forbidden\n", status_code=403)
    body = await asyncio.get_running_loop().run_in_executor(None, render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def health(request: Request) -> Response:
    """GET /health: 200 while the database answers a trivial query in time, else 503."""
    runtime = request.app.state.runtime
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            await runtime.service.timeline.ping()
    except Exception:  # any failure is the same answer to a load balancer
        return PlainTextResponse("unavailable\n", status_code=503)
    return PlainTextResponse("ok\n")
