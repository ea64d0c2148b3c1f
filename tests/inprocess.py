"""The real server application run inside the test process: uvicorn on a free loopback port in
a thread with its own event loop, so websocket, matrix-nio and httpx clients still connect
over real sockets, without the second or so a `uvicorn` subprocess takes to start.

What only a process can show (several processes, kill -9, signals, the graceful stop, header
timeouts and per-address caps, start-up output, memory) stays with `support.ServerProcess`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import uvicorn

from tests.support import CHEAP_PASSWORDS, ServerProcess

_ENVIRONMENT = threading.Lock()


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """`os.environ` with MORELIA_* exactly as a server process started with `env` would see."""
    with _ENVIRONMENT:
        saved = dict(os.environ)
        for name in [name for name in os.environ if name.startswith("MORELIA_")]:
            if not name.startswith("MORELIA_TEST_"):
                del os.environ[name]
        os.environ.update(env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


@contextlib.contextmanager
def _logging_kept() -> Iterator[None]:
    """Put the standard logging module and loguru back as they were once the server stops
    (it routes the first into the second, and loguru into its own log)."""
    from loguru import logger

    from mod.log_handler import UVICORN_LOGGERS

    root = logging.getLogger()
    saved = [(named, list(named.handlers), named.level, named.propagate)
             for named in [root, *map(logging.getLogger, UVICORN_LOGGERS)]]
    try:
        yield
    finally:
        for named, handlers, level, propagate in saved:
            named.handlers, named.propagate = handlers, propagate
            named.setLevel(level)
        logger.remove()
        logger.add(sys.__stderr__)  # type: ignore[arg-type]


class AppServer(ServerProcess):
    """`server:app` served by uvicorn in a thread of this process, on a free loopback port.

    The same face as `ServerProcess` for tests that talk to it over the network (`url`,
    `http`, `port`, `directory`, `alive()` and `log()`: what it logged since it started);
    `process` stays None.
    """

    def __init__(self, directory: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(directory)
        self.env = {"MORELIA_MEDIA_PATH": str(directory / "media"), **CHEAP_PASSWORDS,
                    **(env or {})}
        self.app: Any = None
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self._log: IO[str] | None = None
        self._kept = contextlib.ExitStack()

    def start(self, timeout: float = 60.0) -> AppServer:
        from mod.log_handler import setup_logging

        self._kept.enter_context(_logging_kept())
        with _environment(self.env):
            import server as server_module

            app = self.app = server_module.build_app()
        # log_level as uvicorn's command line has it by default.
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                log_level="info", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"server-{self.port}",
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("in-process server did not start")
            time.sleep(0.01)
        # From here on its lines go to its own log, in its own format, as a process's would.
        self._log = self.log_path.open("a", buffering=1)
        setup_logging(app.state.settings.logging, stream=self._log)
        # Nothing of the server's logs below INFO; the clients' DEBUG lines (websockets,
        # httpx) would only cost time.
        logging.getLogger().setLevel(logging.INFO)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self._stop_gracefully()
            self.server.should_exit = True
            self.thread.join(30)
        self.server = self.thread = None
        self._kept.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _stop_gracefully(self) -> None:
        """What SIGTERM does to a server process (`mod.stopping`), which a server in a thread
        cannot be sent: waiting requests end, MTP connections close."""
        from mod.stopping import STOP_TIMEOUT, graceful_stop

        runtime = getattr(self.app.state, "runtime", None)
        listeners = self.server.servers if self.server is not None else []
        if runtime is None or not listeners or not self.alive():
            return
        stopping = asyncio.run_coroutine_threadsafe(
            graceful_stop(self.server, runtime.hub, runtime.sessions, STOP_TIMEOUT),
            listeners[0].get_loop())
        with contextlib.suppress(Exception):
            stopping.result(STOP_TIMEOUT + 5)

    def long_polls(self) -> int:
        """How many Matrix /sync requests wait for news right now."""
        matrix = getattr(getattr(self.app.state, "runtime", None), "matrix", None)
        while matrix is not None:
            try:
                streams = list(matrix.streams._streams.values())
            except RuntimeError:  # the server's thread changed them meanwhile
                continue
            return sum(1 for stream in streams if stream.event._waiters)
        return 0

    async def until_long_polls(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `count` /sync requests wait for news (so an act now wakes them)."""
        deadline = time.monotonic() + timeout
        while self.long_polls() < count:
            assert time.monotonic() < deadline, "the long-poll never waited"
            await asyncio.sleep(0.005)

    def kill(self) -> None:
        raise NotImplementedError("a server in the test process cannot be killed")

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()
