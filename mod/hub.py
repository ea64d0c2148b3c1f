"""Who is connected, and the fan-out of committed changes to them.

Every committed change reaches the hub in commit order, as `ChangeRow`s of the change log.
With the in-memory broker (one process) they come straight from the writer thread. With a
shared broker, the writer's commits and other processes' hints are only wake-ups: the hub
then reads the change log after the last position it delivered, so each change is delivered
once, in order, whichever process committed it.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from loguru import logger

from mod.db import dbhandler as db
from mod.db.engine import ChangeRow, Engine


class Listener(Protocol):
    """A connected client of one user that takes pushed changes."""

    user_uuid: str

    def deliver(self, change: ChangeRow) -> None: ...


HintHandler = Callable[[int], None]


class Broker(Protocol):
    """Carries wake-up hints ("the change log grew to position N") between processes."""

    shared: bool

    async def start(self, on_hint: HintHandler) -> None: ...

    async def publish(self, position: int) -> None: ...

    async def stop(self) -> None: ...


class MemoryBroker:
    """One process: nothing to carry."""

    shared = False

    async def start(self, on_hint: HintHandler) -> None:
        return None

    async def publish(self, position: int) -> None:
        return None

    async def stop(self) -> None:
        return None


def recipients_extra(change: ChangeRow) -> set[str]:
    """Users told of a change besides the flow's current members."""
    if change.kind in ("flow_left", "flow_invited"):
        return {change.subject}
    return set()


class Hub:
    def __init__(self, engine: Engine, broker: Broker | None = None) -> None:
        self.engine = engine
        self.broker: Broker = broker or MemoryBroker()
        self.position = 0
        self.observers: list[Callable[[list[ChangeRow]], None]] = []
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._members: dict[str, set[str]] = {}
        self._local: list[ChangeRow] = []
        self._hinted = 0
        self._wake = asyncio.Event()
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.position = await self.engine.read(db.last_position)
        self.engine.on_commit = self.committed
        await self.broker.start(self.hint)
        self._task = asyncio.create_task(self._deliver_forever(), name="hub")
        logger.info("hub started at change {} ({})", self.position,
                    type(self.broker).__name__)

    async def stop(self) -> None:
        self.engine.on_commit = None
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.broker.stop()

    # -- connections -------------------------------------------------------------------------

    def register(self, listener: Listener) -> None:
        self._listeners[listener.user_uuid].add(listener)

    def unregister(self, listener: Listener) -> None:
        listeners = self._listeners.get(listener.user_uuid)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.user_uuid]

    def connected(self) -> int:
        return sum(len(listeners) for listeners in self._listeners.values())

    async def wait(self, user_uuid: str, after: int, timeout: float) -> int:
        """Wait up to `timeout` s for a change after position `after` that concerns the user.

        Returns the hub's position then. A change committed before the call is seen as well.
        """
        if self.position > after or timeout <= 0:
            return self.position
        event = asyncio.Event()
        self._waiters[user_uuid].add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(user_uuid)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[user_uuid]
        return self.position

    # -- intake ------------------------------------------------------------------------------

    def committed(self, changes: list[ChangeRow]) -> None:
        """Changes this process just committed (called on the event loop, in commit order)."""
        if self.broker.shared:
            self._hinted = max(self._hinted, changes[-1].position)
            asyncio.get_running_loop().create_task(self._publish(changes[-1].position))
        else:
            self._local.extend(changes)
        self._wake.set()

    def hint(self, position: int) -> None:
        """Another process committed up to `position` (or a reconnect asks to catch up)."""
        self._hinted = max(self._hinted, position, self.position + 1)
        self._wake.set()

    async def _publish(self, position: int) -> None:
        try:
            await self.broker.publish(position)
        except Exception as exc:  # noqa: BLE001 - the broker reconnects by itself
            logger.warning("broker publish failed: {}", exc)

    # -- delivery ----------------------------------------------------------------------------

    async def _deliver_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._deliver_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried on the next wake-up
                logger.warning("delivery paused: {}", exc)
                await asyncio.sleep(0.5)
                self._wake.set()

    async def _deliver_pending(self) -> None:
        while self._local:
            batch, self._local = self._local, []
            await self._dispatch(batch)
        while self._hinted > self.position:
            changes = await self.engine.read(db.changes_after, self.position, 1000)
            if not changes:
                break
            await self._dispatch(changes)

    async def _dispatch(self, changes: list[ChangeRow]) -> None:
        for change in changes:
            if change.position <= self.position:
                continue
            if change.flow_uuid:
                members = await self._flow_members(change)
                for user_uuid in members | recipients_extra(change):
                    self._deliver_to(user_uuid, change)
            self.position = change.position
        for observer in self.observers:
            observer(changes)

    def _deliver_to(self, user_uuid: str, change: ChangeRow) -> None:
        for listener in list(self._listeners.get(user_uuid, ())):
            listener.deliver(change)
        for event in self._waiters.get(user_uuid, ()):
            event.set()

    async def _flow_members(self, change: ChangeRow) -> set[str]:
        members = self._members.get(change.flow_uuid)
        if change.kind == "flow_created":
            users = json.loads(change.payload)["flow"]["users"]
            members = self._members[change.flow_uuid] = set(users)
            return members
        if members is None:
            members = set(await self.engine.read(db.flow_members, change.flow_uuid))
            self._members[change.flow_uuid] = members
        if change.kind == "flow_joined":
            members.add(change.subject)
        elif change.kind == "flow_left":
            members.discard(change.subject)
        return members




def make_broker(uri: str, engine: Engine) -> Broker:
    """The broker a `[BROKER] URI` names."""
    if uri.startswith("memory://"):
        return MemoryBroker()
    raise ValueError(f"[BROKER] URI: no broker for {uri.split(':', 1)[0]}:// yet")
