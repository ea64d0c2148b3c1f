"""The MTP connections of one server process, in an object its runtime owns (made in the app's
lifespan, not a module global): the sweeper task that aborts connections whose peers stopped
taking bytes, the hub observer that closes a locked user's connections, the graceful stop of
them all, their count for /status, and the note of the last change that could not be pushed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from loguru import logger

from mod import metrics
from mod.changes import Change, Kind, RevokedPayload

CLOSE_LOCKED = 1008


class Abortable(Protocol):
    def abort(self) -> None: ...


class Connection(Protocol):
    """What the registry needs of a connection (`mod.protocol.mtp.session.MTPSession`)."""

    caller_uuid: str
    user_uuid: str
    closing: bool

    @property
    def transport(self) -> Abortable | None: ...

    def sweep(self) -> bool: ...

    def drop(self) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    async def stop(self) -> None: ...


def _locking(change: Change) -> bool:
    try:
        payload = change.data
    except ValueError:
        return False
    return isinstance(payload, RevokedPayload) and payload.locked


class SessionRegistry:
    """The open MTP connections, and one sweeper task per process that aborts those whose peers
    stopped taking bytes. `start` and `stop` run in the app's lifespan."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.sessions: set[Connection] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._skipped_position = 0
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """How many MTP connections this process holds."""
        return len(self.sessions)

    def add(self, session: Connection) -> None:
        self.sessions.add(session)

    def discard(self, session: Connection) -> None:
        self.sessions.discard(session)

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._run(), name="mtp sweeper")

    async def stop(self) -> None:
        """End the sweeper (server shutdown)."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)

    async def stop_all(self, timeout: float) -> int:
        """Stop every session (see `MTPSession.stop`) and wait up to `timeout` s for them."""
        if not self.sessions:
            return 0
        sessions = list(self.sessions)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(session.stop() for session in sessions))
                while self.sessions:
                    await asyncio.sleep(0.01)
        return len(sessions)

    def close_locked(self, changes: list[Change]) -> None:
        """A hub observer: close every connection of a user an operator locked, lockstep ones
        too (their next request would fail anyway)."""
        locked = {change.actor for change in changes
                  if change.kind == Kind.TOKENS_REVOKED and _locking(change)}
        if not locked:
            return
        for session in list(self.sessions):
            if session.caller_uuid in locked and not session.closing:
                logger.info("closing a connection of locked user {}", session.caller_uuid)
                session.drop()
                task = asyncio.get_running_loop().create_task(
                    session.close(CLOSE_LOCKED, "Account locked"))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    def unrenderable(self, change: Change, exc: BaseException) -> None:
        """Log once a change that cannot be rendered as a push; its recipients skip it."""
        if change.position != self._skipped_position:
            self._skipped_position = change.position
            logger.warning("change {} ({}) cannot be pushed and is skipped: {}", change.position,
                           change.kind, type(exc).__name__)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for session in list(self.sessions):
                if not session.sweep() and session.transport is not None:
                    logger.warning("aborting a connection whose peer took no data for {:.0f} s "
                                   "(user {})", self.interval, session.user_uuid or "-")
                    metrics.DROPPED_SLOW.inc()
                    session.drop()
                    session.transport.abort()
                    self.sessions.discard(session)
