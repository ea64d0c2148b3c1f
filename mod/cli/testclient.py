"""The test client's connection to a server, and `testclient send`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import websockets
from loguru import logger
from websockets.exceptions import ConnectionClosed, WebSocketException

from mod.cli.common import Unreachable, first_line
from mod.cli.frames import (
    Fields,
    Override,
    apply_override,
    build_request,
    needs_user,
    status_of,
)

Frame = dict[str, Any]
PushHandler = Callable[[Frame], None]


class Connection:
    """One websocket to an MTP server. Requests are answered in order; pushes go aside."""

    def __init__(self, ws: websockets.ClientConnection, address: str,
                 on_push: PushHandler | None) -> None:
        self.ws = ws
        self.address = address
        self.on_push = on_push
        self.pending: deque[asyncio.Future[Frame]] = deque()
        self.closed = asyncio.Event()
        self.reason = "the server closed the connection"
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, address: str, timeout: float, on_push: PushHandler | None = None
                   ) -> Connection:
        try:
            ws = await websockets.connect(address, max_size=None, open_timeout=timeout)
        except ConnectionRefusedError:
            raise Unreachable(f"cannot reach the server at {address}: connection refused "
                              "(is it running?)") from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else first_line(exc)
            raise Unreachable(f"cannot reach the server at {address}: {reason}") from None
        return cls(ws, address, on_push)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    frame = None
                if not isinstance(frame, dict):
                    logger.warning("the server sent a frame that is not a JSON object")
                    continue
                meta = frame.get("meta")
                if isinstance(meta, dict) and meta.get("push"):
                    if self.on_push is not None:
                        self.on_push(frame)
                elif self.pending:
                    waiter = self.pending.popleft()
                    if not waiter.done():
                        waiter.set_result(frame)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            if code is not None:
                self.reason = f"the server closed the connection (code {code})"
        finally:
            while self.pending:
                waiter = self.pending.popleft()
                if not waiter.done():
                    waiter.set_exception(Unreachable(self.reason))
            self.closed.set()

    async def call(self, frame: Frame, timeout: float) -> Frame:
        """Send one request and return its response (pushes that arrive meanwhile go aside)."""
        if self.closed.is_set():
            raise Unreachable(self.reason)
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.pending.append(waiter)
        try:
            await self.ws.send(json.dumps(frame))
        except ConnectionClosed:
            raise Unreachable(self.reason) from None
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise Unreachable(f"no answer from {self.address} within {timeout:g} s") from None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@dataclass(slots=True)
class LoggedIn:
    uuid: str
    auth_id: str

    @property
    def cred(self) -> dict[str, str]:
        return {"uuid": self.uuid, "auth_id": self.auth_id}


async def log_in(connection: Connection, login: str, password: str, timeout: float,
                 push: bool = False) -> tuple[LoggedIn | None, Frame]:
    """Authenticate (asking for pushes on the connection with `push`); the session (None when
    refused) and the server's response."""
    request = build_request("authentication", Fields(login=login, password=password), None)
    if push:
        request["meta"] = {"push": True}
    response = await connection.call(request, timeout)
    if status_of(response) != 200:
        return None, response
    user = response["data"]["user"][0]
    return LoggedIn(user["uuid"], user["auth_id"]), response


def prepare(kind: str, given: Fields, overrides: Sequence[Override],
            cred: dict[str, str] | None) -> Frame:
    frame = build_request(kind, given, cred)
    for override in overrides:
        apply_override(frame, override)
    return frame


@dataclass(slots=True)
class Outcome:
    response: Frame
    login_refused: bool = False


async def send(address: str, kind: str, given: Fields, overrides: Sequence[Override],
               timeout: float) -> Outcome:
    """Log in when the method needs it and a login is given, send the request, return the
    response. A refused login returns the authentication response instead."""
    prepare(kind, given, overrides, None)  # report a bad override before connecting
    connection = await Connection.open(address, timeout)
    try:
        cred = None
        if needs_user(kind) and given.login:
            session, response = await log_in(connection, given.login, given.password or "",
                                             timeout)
            if session is None:
                return Outcome(response, login_refused=True)
            cred = session.cred
        frame = prepare(kind, given, overrides, cred)
        return Outcome(await connection.call(frame, timeout))
    finally:
        await connection.close()
