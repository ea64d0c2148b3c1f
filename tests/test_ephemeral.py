"""Typing notices in the service (no server): each ends by its own timeout, once."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from mod.changes import Kind, TypingPayload
from mod.db import dbhandler as db
from mod.service import ephemeral
from tests.service_support import World

pytestmark = pytest.mark.anyio


async def typing_notices(world: World, after: int, until: float) -> list[bool]:
    """Wait until `until` (monotonic) and feed the service the changes committed meanwhile,
    as the hub does; the typing notices among them, started (True) or ended (False)."""
    notices: list[bool] = []
    while time.monotonic() < until:
        changes = await world.engine.read(db.changes_after, after)
        world.service.ephemeral.changes_committed(changes)
        for change in changes:
            after = change.position
            if change.kind == Kind.TYPING:
                assert isinstance(change.data, TypingPayload)
                notices.append(change.data.typing)
        await asyncio.sleep(0.02)
    return notices


async def test_a_notice_ends_by_its_timeout_though_the_timer_fires_early(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """uvloop's timers count from the start of the loop's current iteration, so under load
    one fires before the notice's end by the wall clock; the end is logged all the same."""
    alice = await world.user("alice")
    flow = await world.flow(alice)
    start = (await world.last_change())[0]

    await world.service.ephemeral.typing(alice, flow, True, 300)
    # From here the service's clock reads 0.2 s less: its timer fires 0.2 s early.
    monkeypatch.setattr(ephemeral, "time", SimpleNamespace(time=lambda: time.time() - 0.2))
    assert await typing_notices(world, start, time.monotonic() + 1.2) == [True, False]


async def test_a_renewed_notice_ends_once_by_its_new_timeout(world: World) -> None:
    alice = await world.user("alice")
    flow = await world.flow(alice)
    start = (await world.last_change())[0]

    await world.service.ephemeral.typing(alice, flow, True, 300)
    await typing_notices(world, start, time.monotonic() + 0.1)
    await world.service.ephemeral.typing(alice, flow, True, 600)
    assert await typing_notices(world, start, time.monotonic() + 0.4) == [True, True]
    assert await typing_notices(world, start, time.monotonic() + 0.6) == [True, True, False]
