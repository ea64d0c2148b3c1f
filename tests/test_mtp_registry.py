"""The runtime's registry of MTP sessions, in process: closing a locked user's connections,
the graceful stop, the sweeper of dead peers, and the once-per-change note of a change that
cannot be pushed. (The same paths end to end: test_hub.py, test_stopping.py, test_operator.py.)"""

from __future__ import annotations

import asyncio
import json

import pytest
from loguru import logger

from mod.changes import Change
from mod.protocol.mtp.registry import CLOSE_LOCKED, SessionRegistry

pytestmark = pytest.mark.anyio


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.buffered = buffered
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True


class FakeSession:
    def __init__(self, registry: SessionRegistry, caller_uuid: str = "",
                 transport: FakeTransport | None = None, alive: bool = True) -> None:
        self.registry = registry
        self.caller_uuid = caller_uuid
        self.user_uuid = caller_uuid
        self.closing = False
        self.transport = transport
        self.alive = alive
        self.closed: list[tuple[int, str]] = []
        registry.add(self)

    def sweep(self) -> bool:
        return self.alive

    def drop(self) -> None:
        self.closing = True

    async def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))

    async def stop(self) -> None:
        self.registry.discard(self)


def change(kind: str, actor: str = "", payload: object = None, position: int = 1) -> Change:
    return Change(position=position, time=0, kind=kind, flow_uuid="", actor=actor,
                     subject="", payload=json.dumps(payload or {}))


def test_a_registry_counts_its_sessions() -> None:
    registry = SessionRegistry(1.0)
    first, second = FakeSession(registry), FakeSession(registry)
    assert len(registry) == 2
    registry.discard(first)
    registry.discard(first)
    assert len(registry) == 1 and second in registry.sessions


async def test_locking_a_user_closes_only_their_connections() -> None:
    registry = SessionRegistry(1.0)
    locked, other = FakeSession(registry, "alice"), FakeSession(registry, "bob")
    registry.close_locked([change("tokens_revoked", "alice", {"locked": False}),
                           change("message_sent", "bob", {"locked": True})])
    assert not locked.closing and not other.closing
    registry.close_locked([change("tokens_revoked", "alice", {"locked": True})])
    await asyncio.sleep(0)
    assert locked.closing and locked.closed == [(CLOSE_LOCKED, "Account locked")]
    assert not other.closing and other.closed == []


async def test_stop_all_waits_for_every_session() -> None:
    registry = SessionRegistry(1.0)
    assert await registry.stop_all(1.0) == 0
    FakeSession(registry), FakeSession(registry)
    assert await registry.stop_all(1.0) == 2
    assert len(registry) == 0


async def test_the_sweeper_aborts_peers_that_took_nothing() -> None:
    registry = SessionRegistry(0.01)
    stuck = FakeSession(registry, "carol", FakeTransport(100), alive=False)
    fine = FakeSession(registry, "dave", FakeTransport(), alive=True)
    registry.start()
    try:
        async with asyncio.timeout(5):
            while stuck in registry.sessions:
                await asyncio.sleep(0.01)
    finally:
        await registry.stop()
    assert stuck.closing and stuck.transport is not None and stuck.transport.aborted
    assert fine in registry.sessions and not fine.closing


def test_an_unrenderable_change_is_logged_once() -> None:
    registry = SessionRegistry(1.0)
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING")
    try:
        for _ in range(3):
            registry.unrenderable(change("message_sent", position=7), ValueError())
        registry.unrenderable(change("message_sent", position=8), KeyError())
    finally:
        logger.remove(sink)
    assert len(lines) == 2
    assert "change 7 (message_sent)" in lines[0] and "KeyError" in lines[1]
