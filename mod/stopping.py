"""What the app adds to uvicorn's server: the connection guards, and a graceful stop.

Uvicorn gives an app no handle on its server, but while it serves, its `Server.handle_exit`
is the process's SIGTERM handler, and through it the app reaches the server (whether started
by `manage.py runserver` or as `uvicorn server:app`). From the lifespan's start-up, before the
server listens, `attach` then

- puts the guards of `mod.http_guard` (head and body deadlines, the cap per address) on
  the HTTP protocol class the server builds connections from;
- runs `graceful_stop` first when the server shuts down: stop accepting, end every waiting
  Matrix /sync with what it has, let each MTP connection answer the request it is handling
  and close with 1012. Uvicorn's own shutdown follows: HTTP requests in progress finish
  (within `STOP_TIMEOUT` s, unless `--timeout-graceful-shutdown` says otherwise).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from mod.config.validator import Server
from mod.http_guard import guarded
from mod.hub import Hub
from mod.protocol.mtp.registry import SessionRegistry

STOP_TIMEOUT = 5


def uvicorn_server() -> Any:
    """The uvicorn `Server` running this process, or None (tests, other servers)."""
    try:
        import uvicorn
    except ImportError:  # pragma: no cover
        return None
    handler = signal.getsignal(signal.SIGTERM)
    owner = getattr(handler, "__self__", None)
    return owner if isinstance(owner, uvicorn.Server) else None


async def graceful_stop(server: Any, hub: Hub, sessions: SessionRegistry,
                        timeout: float) -> None:
    started = time.monotonic()
    for listener in getattr(server, "servers", ()):
        listener.close()  # stop accepting at once
    hub.stopping()
    closed = await sessions.stop_all(timeout)
    logger.info("stopping: MTP connections closed ({}) in {:.2f} s", closed,
                time.monotonic() - started)


def attach(settings: Server, hub: Hub, sessions: SessionRegistry) -> bool:
    """Guard the server's connections and make its stop graceful; False without uvicorn."""
    server = uvicorn_server()
    if server is None:
        return False
    config = server.config
    config.http_protocol_class = guarded(config.http_protocol_class, settings)
    if config.timeout_graceful_shutdown is None:
        config.timeout_graceful_shutdown = STOP_TIMEOUT
    timeout = float(config.timeout_graceful_shutdown)
    shutdown: Callable[..., Awaitable[None]] = server.shutdown

    async def graceful_shutdown(*args: Any, **kwargs: Any) -> None:
        try:
            await graceful_stop(server, hub, sessions, timeout)
        finally:
            await shutdown(*args, **kwargs)

    server.shutdown = graceful_shutdown
    logger.info("request heads due within {:g} s; bodies cut idle {:g} s or under {} bytes/s "
                "after {:g} s; at most {} connections per address; graceful stop within {:g} s",
                settings.header_timeout, settings.body_timeout, settings.body_min_rate,
                settings.body_grace, settings.max_connections_per_address or "unlimited",
                timeout)
    return True
