"""Morelia Server: the Starlette application. Routes and lifespan only."""

from __future__ import annotations

import asyncio
import html
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from loguru import logger
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from mod import __version__
from mod.config.config import ConfigError, load_settings
from mod.config.validator import Settings
from mod.db import heartbeat, schema
from mod.db.engine import DatabaseUnreachable, Engine, probe
from mod.hub import Hub, hub_for
from mod.log_handler import setup_logging
from mod.monitor import Instrument, health, metrics_page
from mod.protocol.matrix import ROUTES, Matrix, MatrixCORS, MatrixGate, MatrixRouter
from mod.protocol.mtp.api import PROTOCOL_REVISION, PROTOCOL_VERSION
from mod.protocol.mtp.dispatch import MTPController
from mod.protocol.mtp.registry import SessionRegistry
from mod.protocol.mtp.session import MTPSession, TransportAccess
from mod.service import Service
from mod.stopping import attach
from mod.webclient import web_routes


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    service: Service
    hub: Hub
    matrix: Matrix
    controller: MTPController
    sessions: SessionRegistry
    started: float


def _settings() -> Settings:
    """The configuration, and a database that answers; else one line and exit status 1."""
    try:
        settings = load_settings()
        probe(settings.database.uri)
        _check_schema(settings)
    except ConfigError as exc:
        print(f"Morelia Server cannot start: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except DatabaseUnreachable as exc:
        print(f"Morelia Server cannot start: [DATABASE] URI: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except schema.SchemaError as exc:
        print(f"Morelia Server cannot start: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    return settings


def _check_schema(settings: Settings) -> None:
    """Refuse a database made by a newer server before serving anything (SchemaError)."""
    engine = Engine(settings.database)
    try:
        schema.pending(schema.current_version(engine))
    finally:
        engine.stop()


async def _open(settings: Settings) -> Runtime:
    engine = Engine(settings.database)
    # Before the writer starts: an upgrade holds the database's write lock while it runs.
    outcome = await asyncio.to_thread(schema.migrate, engine)
    if outcome.created:
        logger.info("created tables: {}", ", ".join(outcome.created))
    engine.start(asyncio.get_running_loop())
    service = Service(settings, engine)
    hub = hub_for(settings, engine)
    hub.observers.append(service.accounts.changes_committed)
    sessions = SessionRegistry(settings.server.ping_interval)
    hub.observers.append(sessions.close_locked)
    hub.observers.append(service.ephemeral.changes_committed)
    await hub.start()
    sessions.start()
    matrix = Matrix(settings, service, hub)
    controller = MTPController(service, settings.protocol)
    return Runtime(settings, engine, service, hub, matrix, controller, sessions,
                   time.monotonic())


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    setup_logging(settings.logging)
    runtime = await _open(settings)
    app.state.runtime = runtime
    gate: MatrixGate = app.state.matrix_gate
    gate.open(MatrixRouter(ROUTES, runtime.matrix))
    purge = asyncio.create_task(runtime.service.accounts.purge_forever(), name="purge")
    alive = asyncio.create_task(heartbeat.keep(runtime.engine), name="heartbeat")
    indexing = asyncio.create_task(runtime.service.search.index_forever(), name="search index")
    if not attach(settings.server, runtime.hub, runtime.sessions):
        logger.debug("not run by uvicorn: no header timeout, address cap or graceful stop")
    logger.info("{} {} serving MTP {} on {}", settings.server.name, __version__,
                PROTOCOL_VERSION, settings.database.uri.split("@")[-1])
    try:
        yield
    finally:
        purge.cancel()
        indexing.cancel()
        alive.cancel()
        await asyncio.gather(alive, return_exceptions=True)
        await runtime.sessions.stop()
        await runtime.hub.stop()
        await runtime.service.media.stop()
        runtime.service.close()
        runtime.engine.stop()
        logger.info("stopped")


async def websocket_endpoint(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    session = MTPSession(websocket, runtime.controller, runtime.hub, runtime.settings.server,
                         runtime.sessions)
    await session.run()


async def status_page(request: Request) -> HTMLResponse:
    runtime: Runtime = request.app.state.runtime
    counts = await runtime.service.timeline.counts()
    uptime = int(time.monotonic() - runtime.started)
    name = html.escape(runtime.settings.server.name)
    rows = "".join(
        f"<tr><th>{label}</th><td>{html.escape(str(value))}</td></tr>"
        for label, value in (
            ("Version", __version__),
            ("Protocol", f"MTP {PROTOCOL_VERSION} revision {PROTOCOL_REVISION}"),
            ("Uptime", f"{uptime // 86400}d {uptime % 86400 // 3600:02}:"
                       f"{uptime % 3600 // 60:02}:{uptime % 60:02}"),
            ("Users", counts["users"]),
            ("Flows", counts["flows"]),
            ("Messages", counts["messages"]),
            ("Connections", len(runtime.sessions)),
        )
    )
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{name}</title></head>"
        f"<body><h1>{name}</h1><table>{rows}</table>"
        f"<p><a href='/'>Open the web client</a></p></body></html>"
    )


def build_app() -> Starlette:
    # Matrix's first: most requests are Matrix's, and no other route shares its paths.
    matrix_gate = MatrixGate(ROUTES)
    routes: list[BaseRoute] = [
        *matrix_gate.routes(),
        Route("/status", status_page),
        *web_routes(),
        Route("/health", health),
        Route("/metrics", metrics_page),
        WebSocketRoute("/ws", websocket_endpoint),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(Instrument), Middleware(TransportAccess),
                                Middleware(MatrixCORS)])
    settings = _settings()
    # Now, not at start-up: uvicorn logs from here on, and its lines take our form too.
    setup_logging(settings.logging)
    app.state.settings = settings
    app.state.matrix_gate = matrix_gate
    return app


app = build_app()
