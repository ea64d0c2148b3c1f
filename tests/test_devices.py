"""`service.devices.LastSeen`: a device's last use is written at most once a minute, in one
writer job for every device due, and never on the request's path."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mod.service import devices
from mod.service.common import Caller

pytestmark = pytest.mark.anyio


class Writer:
    """Stands in for the engine: records each write job's devices."""

    def __init__(self) -> None:
        self.jobs: list[list[tuple[str, str, int, str]]] = []
        self.release = asyncio.Event()

    async def write(self, job: Any, seen: list[tuple[str, str, int, str]], now: int) -> None:
        await self.release.wait()
        self.jobs.append(seen)


def caller(user: str, device: str) -> Caller:
    return Caller(uuid=user, token_hash="hash-" + user, is_superuser=False, device=device)


async def test_last_seen_written_once_a_minute_in_one_job() -> None:
    writer = Writer()
    seen = devices.LastSeen(writer)  # type: ignore[arg-type]
    seen.saw(caller("u1", "D1"), "10.0.0.1")
    seen.saw(caller("u1", "D1"), "10.0.0.2")  # within the minute: not recorded
    seen.saw(caller("u2", "D2"), "10.0.0.3")
    seen.saw(caller("u3", ""), "10.0.0.4")  # no device: nothing to record
    writer.release.set()
    while seen._writing is not None:
        await asyncio.sleep(0.01)
    assert [sorted((user, device, address) for user, device, _, address in job)
            for job in writer.jobs] == [[("u1", "D1", "10.0.0.1"), ("u2", "D2", "10.0.0.3")]]
    stamp, address = seen.latest("u1", "D1", 0, "")
    assert address == "10.0.0.1" and stamp > 0
    assert seen.latest("u1", "D1", stamp + 1, "stored") == (stamp + 1, "stored")

    seen._recorded[("u1", "D1")] -= devices.SEEN_EVERY  # a minute passes
    seen.saw(caller("u1", "D1"), "10.0.0.5")
    while seen._writing is not None:
        await asyncio.sleep(0.01)
    assert writer.jobs[-1][0][3] == "10.0.0.5"
